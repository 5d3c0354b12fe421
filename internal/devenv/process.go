/*
Copyright 2026 The labhook Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package devenv

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// readyTimeout bounds how long a child may take to answer its readiness URL.
const readyTimeout = 60 * time.Second

// stopTimeout is how long a child gets to exit after SIGTERM before SIGKILL.
const stopTimeout = 10 * time.Second

// childSpec describes one child process: the binary dir/name, its
// arguments and extra environment, and the URL that answers 200 once it is
// ready.
type childSpec struct {
	name, dir string
	args, env []string
	wait      string
	// echo, when set, also receives the child's output (the receiver's
	// message log is worth seeing in the terminal).
	echo io.Writer
}

// child is a running child process whose output goes to <dir>/<name>.log.
type child struct {
	spec    childSpec
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// group is the children started so far, stopped in reverse order.
type group struct {
	mu       sync.Mutex
	children []*child
}

// start runs spec, waits until it is ready, and reports on exited if it
// ever exits on its own.
func (g *group) start(ctx context.Context, exited chan<- *child, spec childSpec) error {
	logger := log.FromContext(ctx)
	bin, err := filepath.Abs(filepath.Join(spec.dir, spec.name))
	if err != nil {
		return fmt.Errorf("%s: %w", spec.name, err)
	}
	logPath := filepath.Join(spec.dir, spec.name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("%s log: %w", spec.name, err)
	}
	// Not exec.CommandContext: the children are stopped with SIGTERM and a
	// grace period, in order, not killed when ctx ends.
	cmd := exec.Command(bin, spec.args...)
	cmd.Env = append(os.Environ(), spec.env...)
	var out io.Writer = logFile
	if spec.echo != nil {
		out = io.MultiWriter(logFile, spec.echo)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("start %s: %w", spec.name, err)
	}
	ch := &child{spec: spec, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		ch.err = cmd.Wait()
		_ = logFile.Close()
		close(ch.done)
		select {
		case exited <- ch:
		default:
		}
	}()
	g.mu.Lock()
	g.children = append(g.children, ch)
	g.mu.Unlock()
	logger.Info("started", "process", spec.name, "pid", cmd.Process.Pid, "log", logPath)
	if spec.wait == "" {
		return nil
	}
	if err := waitHTTP(ctx, spec.wait, readyTimeout, ch); err != nil {
		return err
	}
	logger.Info("ready", "process", spec.name, "url", spec.wait)
	return nil
}

// stopAll stops the children, newest first: SIGTERM, then SIGKILL after
// stopTimeout.
func (g *group) stopAll(logger logr.Logger) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := len(g.children) - 1; i >= 0; i-- {
		ch := g.children[i]
		select {
		case <-ch.done:
			continue
		default:
		}
		_ = terminate(ch.cmd)
		select {
		case <-ch.done:
			logger.Info("stopped", "process", ch.spec.name)
		case <-time.After(stopTimeout):
			_ = ch.cmd.Process.Kill()
			<-ch.done
			logger.Info("killed after timeout", "process", ch.spec.name, "timeout", stopTimeout)
		}
	}
	g.children = nil
}
