package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	sigsjson "sigs.k8s.io/json"
)

// decodePod reads the dozen Pod fields dns-tuner uses from the object the API server sent.
//
// Why not a typed decode: a full corev1.Pod decode (env, volumes, probes, quantities) was 88 %
// of the handler's CPU, and generic decoders still allocate for every key they skip, which
// shows up as garbage-collection tail latency at admission. The raw object is part of an
// AdmissionReview that controller-runtime has already parsed with encoding/json, so it is
// well-formed JSON; this walker skips what it does not need without allocating, matches keys
// case-sensitively as the API server does, and rejects a field of the wrong JSON type.
// TestDecodePodMatchesFullDecode and FuzzDecodePod hold it to encoding/json.
func decodePod(raw []byte) (*corev1.Pod, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, errors.New("decoding pod: there is no content to decode")
	}
	pod := &corev1.Pod{}
	err := eachField(raw, func(key, val []byte) error {
		switch string(key) {
		case "metadata":
			return decodeMeta(val, pod)
		case "spec":
			return decodeSpec(val, &pod.Spec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("decoding pod: %w", err)
	}
	return pod, nil
}

func decodeMeta(val []byte, pod *corev1.Pod) error {
	return eachField(val, func(key, v []byte) (err error) {
		switch string(key) {
		case "name":
			pod.Name, err = str(v, "metadata.name")
		case "generateName":
			pod.GenerateName, err = str(v, "metadata.generateName")
		case "namespace":
			pod.Namespace, err = str(v, "metadata.namespace")
		case "annotations":
			if isNull(v) {
				pod.Annotations = nil
				return nil
			}
			pod.Annotations = map[string]string{}
			err = eachField(v, func(k, av []byte) error {
				ks, err := unquote(k)
				if err != nil {
					return err
				}
				s, err := str(av, "metadata.annotations")
				pod.Annotations[ks] = s
				return err
			})
		}
		return err
	})
}

func decodeSpec(val []byte, spec *corev1.PodSpec) error {
	return eachField(val, func(key, v []byte) (err error) {
		switch string(key) {
		case "dnsPolicy":
			var s string
			s, err = str(v, "spec.dnsPolicy")
			spec.DNSPolicy = corev1.DNSPolicy(s)
		case "hostNetwork":
			switch string(v) {
			case "true":
				spec.HostNetwork = true
			case "false", "null":
				spec.HostNetwork = false
			default:
				err = fmt.Errorf("spec.hostNetwork: want a boolean, got %.20s", v)
			}
		case "serviceAccountName":
			spec.ServiceAccountName, err = str(v, "spec.serviceAccountName")
		case "dnsConfig":
			// Small, and its values are what dns-tuner merges with: decode it fully.
			spec.DNSConfig = nil
			if !isNull(v) {
				spec.DNSConfig = &corev1.PodDNSConfig{}
				if err = sigsjson.UnmarshalCaseSensitivePreserveInts(v, spec.DNSConfig); err != nil {
					err = fmt.Errorf("spec.dnsConfig: %w", err)
				}
			}
		case "containers":
			spec.Containers, err = decodeContainers(v, "spec.containers")
		case "initContainers":
			spec.InitContainers, err = decodeContainers(v, "spec.initContainers")
		case "imagePullSecrets":
			spec.ImagePullSecrets = nil
			err = eachElement(v, "spec.imagePullSecrets", func(e []byte) error {
				var ref corev1.LocalObjectReference
				err := eachField(e, func(k, fv []byte) (err error) {
					if string(k) == "name" {
						ref.Name, err = str(fv, "spec.imagePullSecrets.name")
					}
					return err
				})
				spec.ImagePullSecrets = append(spec.ImagePullSecrets, ref)
				return err
			})
		}
		return err
	})
}

func decodeContainers(v []byte, what string) ([]corev1.Container, error) {
	var out []corev1.Container
	err := eachElement(v, what, func(e []byte) error {
		var c corev1.Container
		err := eachField(e, func(k, fv []byte) (err error) {
			// Field paths for errors are built only on error: this runs for every container.
			switch string(k) {
			case "name":
				c.Name, err = str(fv, "name")
			case "image":
				c.Image, err = str(fv, "image")
			case "command":
				c.Command, err = strs(fv, "command")
			case "args":
				c.Args, err = strs(fv, "args")
			}
			if err != nil {
				err = fmt.Errorf("%s.%w", what, err)
			}
			return err
		})
		out = append(out, c)
		return err
	})
	return out, err
}

// eachField calls fn with every key (raw, without quotes) and raw value of a JSON object;
// null is an empty object.
func eachField(b []byte, fn func(key, val []byte) error) error {
	i := skipSpace(b, 0)
	if i < len(b) && b[i] == 'n' && isNull(b[i:]) {
		return nil
	}
	if i >= len(b) || b[i] != '{' {
		return fmt.Errorf("want an object, got %.20q", b[i:])
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for i < len(b) {
		if b[i] != '"' {
			return errors.New("malformed object key")
		}
		end, err := skipString(b, i)
		if err != nil {
			return err
		}
		key := b[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 { // never from the API server, but JSON allows it
			k, err := unquote(key)
			if err != nil {
				return err
			}
			key = []byte(k)
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return errors.New("malformed object: missing ':'")
		}
		i = skipSpace(b, i+1)
		vend, err := skipValue(b, i)
		if err != nil {
			return err
		}
		if err := fn(key, b[i:vend]); err != nil {
			return err
		}
		i = skipSpace(b, vend)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			return nil
		}
		return errors.New("malformed object: missing ',' or '}'")
	}
	return errors.New("unterminated object")
}

// eachElement calls fn with every raw element of a JSON array; null is an empty array.
func eachElement(b []byte, what string, fn func(elem []byte) error) error {
	i := skipSpace(b, 0)
	if isNull(b[i:]) {
		return nil
	}
	if i >= len(b) || b[i] != '[' {
		return fmt.Errorf("%s: want an array, got %.20q", what, b[i:])
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return nil
	}
	for i < len(b) {
		end, err := skipValue(b, i)
		if err != nil {
			return err
		}
		if err := fn(b[i:end]); err != nil {
			return err
		}
		i = skipSpace(b, end)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == ']' {
			return nil
		}
		return fmt.Errorf("%s: malformed array", what)
	}
	return fmt.Errorf("%s: unterminated array", what)
}

// skipValue returns the index just past the JSON value that starts at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errors.New("unexpected end of JSON")
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errors.New("unterminated object or array")
	default: // number, true, false, null
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
			j++
		}
		if j == i {
			return 0, fmt.Errorf("unexpected %q", b[i])
		}
		return j, nil
	}
}

// skipString returns the index just past the string that starts with the quote at b[i].
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, errors.New("unterminated string")
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

func isNull(b []byte) bool { return len(b) >= 4 && string(b[:4]) == "null" }

// str decodes a JSON string value; null is "".
func str(v []byte, what string) (string, error) {
	if isNull(v) {
		return "", nil
	}
	if len(v) < 2 || v[0] != '"' {
		return "", fmt.Errorf("%s: want a string, got %.20s", what, v)
	}
	s, err := unquote(v[1 : len(v)-1])
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return s, nil
}

// unquote decodes the inside of a JSON string. Strings without escapes (nearly all) are
// copied as they are.
func unquote(in []byte) (string, error) {
	if bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
		return string(in), nil
	}
	var s string
	if err := json.Unmarshal(append(append([]byte{'"'}, in...), '"'), &s); err != nil {
		return "", err
	}
	return s, nil
}

func strs(v []byte, what string) ([]string, error) {
	if isNull(v) {
		return nil, nil
	}
	out := []string{}
	err := eachElement(v, what, func(e []byte) error {
		s, err := str(e, what)
		out = append(out, s)
		return err
	})
	return out, err
}
