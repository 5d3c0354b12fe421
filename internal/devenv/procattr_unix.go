//go:build unix

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
	"os/exec"
	"syscall"
)

// childProcAttr puts a child in its own process group, so a Ctrl-C in the
// terminal reaches only devenv, which then stops the children in order.
func childProcAttr() *syscall.SysProcAttr {
	return withParentDeathSignal(&syscall.SysProcAttr{Setpgid: true})
}

// terminate asks a child to stop.
func terminate(cmd *exec.Cmd) error {
	return cmd.Process.Signal(syscall.SIGTERM)
}
