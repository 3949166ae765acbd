package mutate

import (
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	sigsjson "sigs.k8s.io/json"

	"github.com/dns-tuner/dns-tuner/internal/cluster"
	"github.com/dns-tuner/dns-tuner/internal/policy"
)

// Pod is the part of a Pod that dns-tuner reads, and nothing else: admission decodes the
// object the API server sends into it, and explain builds it from any pod template through
// the same decoder (PodFromCore), so a field cannot be read by one and not the other. The
// JSON tags are the API's; unknown fields are skipped.
type Pod struct {
	Metadata PodMeta `json:"metadata"`
	Spec     PodSpec `json:"spec"`
}

// PodMeta is the metadata dns-tuner reads.
type PodMeta struct {
	Name         string            `json:"name,omitempty"`
	GenerateName string            `json:"generateName,omitempty"`
	Namespace    string            `json:"namespace,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// PodSpec is the spec dns-tuner reads: what decides the pod's resolv.conf, and what names
// its images and the credentials to pull them.
type PodSpec struct {
	DNSPolicy          corev1.DNSPolicy              `json:"dnsPolicy,omitempty"`
	HostNetwork        bool                          `json:"hostNetwork,omitempty"`
	DNSConfig          *corev1.PodDNSConfig          `json:"dnsConfig,omitempty"`
	InitContainers     []PodContainer                `json:"initContainers,omitempty"`
	Containers         []PodContainer                `json:"containers,omitempty"`
	ImagePullSecrets   []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
	ServiceAccountName string                        `json:"serviceAccountName,omitempty"`
	// NodeSelector and Affinity.NodeAffinity confine the pod to some nodes: with raceFix
	// auto, only their kernels decide.
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	Affinity     *PodAffinity      `json:"affinity,omitempty"`
}

// PodAffinity is the part of the pod's affinity that confines it to nodes.
type PodAffinity struct {
	NodeAffinity *corev1.NodeAffinity `json:"nodeAffinity,omitempty"`
}

// Placement is what confines the pod to some nodes, for cluster.Facts.Exposure.
func (p *Pod) Placement() cluster.Placement {
	pl := cluster.Placement{NodeSelector: p.Spec.NodeSelector}
	if p.Spec.Affinity != nil {
		pl.NodeAffinity = p.Spec.Affinity.NodeAffinity
	}
	return pl
}

// ExposureOf is what the facts say about the nodes the pod can land on, with the policy's
// serviceProxy over the detected mode. Without facts every node counts as exposed.
func ExposureOf(p *policy.Policy, pod *Pod, f cluster.Facts) cluster.Exposure {
	if f == nil {
		return cluster.Unknown
	}
	pl := pod.Placement()
	pl.Proxy = cluster.ProxyMode(p.ServiceProxy)
	return f.Exposure(pl)
}

// nameservers is how many nameservers the pod's resolv.conf lists (kubelet keeps 3).
func (p *Pod) nameservers() int {
	n := 0
	if p.Spec.DNSPolicy != corev1.DNSNone {
		n = 1 // the cluster DNS service (ClusterDNS decided the pod uses it)
	}
	if p.Spec.DNSConfig != nil {
		n += len(p.Spec.DNSConfig.Nameservers)
	}
	return min(max(n, 1), 3)
}

// PodContainer is what detection reads of a container: which binary it runs.
type PodContainer struct {
	Name    string   `json:"name"`
	Image   string   `json:"image,omitempty"`
	Command []string `json:"command,omitempty"`
	Args    []string `json:"args,omitempty"`
	// WorkingDir is where a relative command (./server) is found; "" = the image's.
	WorkingDir string `json:"workingDir,omitempty"`
	// Env is read for PATH only, where a bare command is looked up.
	Env []PodEnv `json:"env,omitempty"`
}

// PodEnv is one environment variable; values from secrets or fields are never read.
type PodEnv struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
}

// onlyPath keeps the PATH entries of env: the view holds no other variable, so no value a
// user put in the environment is kept, logged or cached by dns-tuner.
func onlyPath(env []PodEnv) []PodEnv {
	var out []PodEnv
	for _, e := range env {
		if e.Name == "PATH" {
			out = append(out, e)
		}
	}
	return out
}

// PathEnv is the container's own PATH ("" when it sets none): the last definition wins, as
// in the container runtime.
func (c PodContainer) PathEnv() string {
	path := ""
	for _, e := range c.Env {
		if e.Name == "PATH" {
			path = e.Value
		}
	}
	return path
}

// DecodePod reads the view from a Pod as JSON, matching keys case-sensitively as the API
// server does. A field of the wrong JSON type is an error, and so is a pod without a
// metadata or spec object, which a patch could not add to.
func DecodePod(raw []byte) (*Pod, error) {
	var obj PodObject
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &obj); err != nil {
		return nil, fmt.Errorf("decoding pod: %w", err)
	}
	return obj.Pod()
}

// PodObject is a pod as the JSON decoder fills it, before DecodePod's checks. A document
// that holds a pod (an AdmissionReview's request.object) can hold a PodObject, so the pod is
// read in the same pass as the document instead of being scanned again from raw bytes; it
// must be decoded as DecodePod does (sigs.k8s.io/json, case-sensitive), then checked by Pod.
type PodObject struct {
	Metadata *PodMeta `json:"metadata"`
	Spec     *PodSpec `json:"spec"`
}

// Pod is the view of a decoded object: an error for an object without a metadata or spec
// object, and every environment variable but PATH dropped.
func (o *PodObject) Pod() (*Pod, error) {
	if o == nil || o.Metadata == nil || o.Spec == nil {
		return nil, errors.New("decoding pod: no metadata or spec object")
	}
	pod := &Pod{Metadata: *o.Metadata, Spec: *o.Spec}
	for _, cs := range [][]PodContainer{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			cs[i].Env = onlyPath(cs[i].Env)
		}
	}
	return pod, nil
}

// DecodeMeta reads only the metadata, for a pod whose spec does not decode; ok is false
// when the object has no metadata object that a patch could add annotations to.
func DecodeMeta(raw []byte) (meta PodMeta, ok bool) {
	var obj struct {
		Metadata *PodMeta `json:"metadata"`
	}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &obj); err != nil || obj.Metadata == nil {
		return PodMeta{}, false
	}
	return *obj.Metadata, true
}

// PodFromCore builds the view from a typed pod (a workload's template, a live pod) by the
// same JSON decode admission uses.
func PodFromCore(p *corev1.Pod) (*Pod, error) {
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encoding pod: %w", err)
	}
	return DecodePod(raw)
}

// dnsPod is the minimal corev1.Pod that resolvconf renders from: namespace and DNS fields.
func (p *Pod) dnsPod(opts []corev1.PodDNSConfigOption) *corev1.Pod {
	out := &corev1.Pod{Spec: corev1.PodSpec{DNSPolicy: p.Spec.DNSPolicy, HostNetwork: p.Spec.HostNetwork}}
	out.Namespace = p.Metadata.Namespace
	if dc := p.Spec.DNSConfig; dc != nil {
		out.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: dc.Nameservers, Searches: dc.Searches, Options: dc.Options}
	}
	if opts != nil {
		if out.Spec.DNSConfig == nil {
			out.Spec.DNSConfig = &corev1.PodDNSConfig{}
		}
		out.Spec.DNSConfig.Options = opts
	}
	return out
}

// CorePod is the view as a corev1.Pod with only the fields dns-tuner reads, for code that
// takes the API type (resolvconf.Render).
func (p *Pod) CorePod() *corev1.Pod {
	out := p.dnsPod(nil)
	out.Name, out.GenerateName, out.Annotations = p.Metadata.Name, p.Metadata.GenerateName, p.Metadata.Annotations
	return out
}
