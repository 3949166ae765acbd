package explain

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
)

// templatePaths is where each workload keeps the pod template it stamps pods from.
var templatePaths = map[string][]string{
	"Pod":                   nil,
	"PodTemplate":           {"template"},
	"Deployment":            {"spec", "template"},
	"ReplicaSet":            {"spec", "template"},
	"ReplicationController": {"spec", "template"},
	"StatefulSet":           {"spec", "template"},
	"DaemonSet":             {"spec", "template"},
	"Job":                   {"spec", "template"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template"},
}

// ReadPods reads every pod or pod template from a YAML or JSON stream (several documents, or
// a List). Objects without a pod template are an error that names them, so nothing is
// silently skipped. defaultNamespace applies to objects that name none.
func ReadPods(r io.Reader, source, defaultNamespace string) ([]Input, error) {
	dec := yaml.NewYAMLOrJSONDecoder(bufio.NewReader(r), 4096)
	var out []Input
	for doc := 1; ; doc++ {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("%s: document %d: %w", source, doc, err)
		}
		if len(obj) == 0 {
			continue
		}
		ins, err := fromObject(obj, source, defaultNamespace)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, doc, err)
		}
		out = append(out, ins...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no pod or pod template found", source)
	}
	return out, nil
}

func fromObject(obj map[string]any, source, defaultNamespace string) ([]Input, error) {
	kind, _ := obj["kind"].(string)
	if kind == "List" || kind == "PodList" {
		items, _ := obj["items"].([]any)
		var out []Input
		for _, it := range items {
			m, ok := it.(map[string]any)
			if !ok {
				continue
			}
			ins, err := fromObject(m, source, defaultNamespace)
			if err != nil {
				return nil, err
			}
			out = append(out, ins...)
		}
		return out, nil
	}
	path, ok := templatePaths[kind]
	if !ok {
		return nil, fmt.Errorf("kind %q has no pod template (want Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob or PodTemplate)", kind)
	}
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	namespace, _ := meta["namespace"].(string)
	if namespace == "" {
		namespace = defaultNamespace
	}
	tmpl := obj
	for _, k := range path {
		next, ok := tmpl[k].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s %s: no %v", kind, name, path)
		}
		tmpl = next
	}
	raw, err := json.Marshal(tmpl)
	if err != nil {
		return nil, err
	}
	pod := &corev1.Pod{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(pod); err != nil {
		return nil, fmt.Errorf("%s %s: pod template: %w", kind, name, err)
	}
	pod.Namespace = namespace
	if pod.Name == "" && pod.GenerateName == "" {
		pod.GenerateName = name + "-"
	}
	if len(pod.Spec.Containers) == 0 {
		return nil, fmt.Errorf("%s %s: pod has no containers", kind, name)
	}
	desc := fmt.Sprintf("%s: %s %s/%s", source, kind, namespace, name)
	return []Input{{Source: desc, Pod: pod}}, nil
}
