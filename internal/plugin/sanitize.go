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

package plugin

import (
	"strings"
	"unicode"
)

// Text from the cluster or the network reaches the admin's terminal:
// condition messages and errors quote receivers' answers, and an
// organisation's receiver is anyone's. Before it is printed as text, a
// control character (an ANSI escape sequence, a carriage return that
// overwrites the line, a tab or newline that forges a table row) or a
// bidirectional override becomes '?'. JSON and YAML output escape them
// already.

// cell makes s safe as one table cell or one line.
func cell(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return '?'
		}
		return r
	}, s)
}

// block makes s safe as several lines: newlines and tabs are kept.
func block(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return '?'
		}
		return r
	}, s)
}

// ErrorText is err's message made safe for the terminal, as main prints it.
func ErrorText(err error) string { return cell(err.Error()) }
