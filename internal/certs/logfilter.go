package certs

import (
	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// rotatorLogger is the name cert-controller's rotator logs under.
const rotatorLogger = "cert-rotation"

// QuietRotationConflicts returns log with one change: the error cert-controller's rotator logs
// when another replica wrote the certificate Secret first ("could not refresh CA and server
// certs ... the object has been modified") becomes an info line saying so. Every replica runs
// the rotator; the loser re-reads the Secret and keeps the winner's CA, so the conflict is the
// expected outcome of two replicas starting together, not a fault to page anyone about.
func QuietRotationConflicts(log logr.Logger) logr.Logger {
	if log.GetSink() == nil {
		return log
	}
	return logr.New(&conflictSink{sink: log.GetSink()})
}

type conflictSink struct {
	sink    logr.LogSink
	rotator bool // this logger's name chain includes cert-rotation
}

var (
	_ logr.LogSink          = (*conflictSink)(nil)
	_ logr.CallDepthLogSink = (*conflictSink)(nil)
)

func (c *conflictSink) Init(info logr.RuntimeInfo) {
	info.CallDepth++ // this wrapper's frame
	c.sink.Init(info)
}

func (c *conflictSink) Enabled(level int) bool { return c.sink.Enabled(level) }

func (c *conflictSink) Info(level int, msg string, kv ...any) { c.sink.Info(level, msg, kv...) }

func (c *conflictSink) Error(err error, msg string, kv ...any) {
	if c.rotator && apierrors.IsConflict(err) {
		c.sink.Info(0, "another replica refreshed the certificates first; keeping theirs",
			append([]any{"rotatorMessage", msg, "conflict", err.Error()}, kv...)...)
		return
	}
	c.sink.Error(err, msg, kv...)
}

func (c *conflictSink) WithValues(kv ...any) logr.LogSink {
	return &conflictSink{sink: c.sink.WithValues(kv...), rotator: c.rotator}
}

func (c *conflictSink) WithName(name string) logr.LogSink {
	return &conflictSink{sink: c.sink.WithName(name), rotator: c.rotator || name == rotatorLogger}
}

func (c *conflictSink) WithCallDepth(depth int) logr.LogSink {
	if cd, ok := c.sink.(logr.CallDepthLogSink); ok {
		return &conflictSink{sink: cd.WithCallDepth(depth), rotator: c.rotator}
	}
	return c
}
