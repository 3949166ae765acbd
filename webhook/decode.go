package webhook

import (
	"errors"
	"fmt"

	jsoniter "github.com/json-iterator/go"
	corev1 "k8s.io/api/core/v1"
)

// podJSON decodes case-sensitively, as the API server does. json-iterator skips the fields
// dns-tuner does not read without the validating pre-pass encoding/json makes, which was
// most of what the handler cost; the API server has already validated the object.
var podJSON = jsoniter.Config{CaseSensitive: true, ValidateJsonRawMessage: true}.Froze()

// admissionPod is the part of a Pod that dns-tuner reads. Decoding only these fields costs a
// fraction of a full typed decode (env, volumes, probes, quantities), which dominated the
// admission path; TestDecodePodMatchesFullDecode keeps it in step with what mutate reads.
type admissionPod struct {
	Metadata struct {
		Name         string            `json:"name"`
		GenerateName string            `json:"generateName"`
		Namespace    string            `json:"namespace"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		DNSPolicy          corev1.DNSPolicy              `json:"dnsPolicy"`
		HostNetwork        bool                          `json:"hostNetwork"`
		DNSConfig          *corev1.PodDNSConfig          `json:"dnsConfig"`
		InitContainers     []admissionContainer          `json:"initContainers"`
		Containers         []admissionContainer          `json:"containers"`
		ImagePullSecrets   []corev1.LocalObjectReference `json:"imagePullSecrets"`
		ServiceAccountName string                        `json:"serviceAccountName"`
	} `json:"spec"`
}

type admissionContainer struct {
	Name    string   `json:"name"`
	Image   string   `json:"image"`
	Command []string `json:"command"`
	Args    []string `json:"args"`
}

// decodePod reads the fields dns-tuner needs from a Pod as the API server sent it. Keys are
// matched case-sensitively, as the API server does.
func decodePod(raw []byte) (*corev1.Pod, error) {
	if len(raw) == 0 {
		return nil, errors.New("there is no content to decode")
	}
	var in admissionPod
	if err := podJSON.Unmarshal(raw, &in); err != nil {
		return nil, fmt.Errorf("decoding pod: %w", err)
	}
	pod := &corev1.Pod{}
	pod.Name, pod.GenerateName, pod.Namespace = in.Metadata.Name, in.Metadata.GenerateName, in.Metadata.Namespace
	pod.Annotations = in.Metadata.Annotations
	s := &pod.Spec
	s.DNSPolicy, s.HostNetwork, s.DNSConfig = in.Spec.DNSPolicy, in.Spec.HostNetwork, in.Spec.DNSConfig
	s.ImagePullSecrets, s.ServiceAccountName = in.Spec.ImagePullSecrets, in.Spec.ServiceAccountName
	s.InitContainers = containers(in.Spec.InitContainers)
	s.Containers = containers(in.Spec.Containers)
	return pod, nil
}

func containers(in []admissionContainer) []corev1.Container {
	if in == nil {
		return nil
	}
	out := make([]corev1.Container, len(in))
	for i, c := range in {
		out[i] = corev1.Container{Name: c.Name, Image: c.Image, Command: c.Command, Args: c.Args}
	}
	return out
}
