package main

// Cross-checks struct tags against the generated.proto files shipped in the
// k8s.io modules (the authoritative wire definitions).

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

type protoField struct {
	num      int
	repeated bool
}

// protoFiles caches generated.proto contents: package path -> message -> field name -> field.
type protoFiles struct {
	modcache string
	pkgs     map[string]map[string]map[string]protoField
}

func newProtoFiles() *protoFiles {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	must(err)
	return &protoFiles{modcache: strings.TrimSpace(string(out)), pkgs: map[string]map[string]map[string]protoField{}}
}

var (
	messageRe = regexp.MustCompile(`^message (\w+) \{`)
	fieldRe   = regexp.MustCompile(`^\s+(optional |repeated )?(map<[^>]+>|[\w.]+) (\w+) = (\d+);`)
)

func (p *protoFiles) load(pkgPath string) map[string]map[string]protoField {
	if m, ok := p.pkgs[pkgPath]; ok {
		return m
	}
	var dir string
	for _, mod := range []string{"k8s.io/apiextensions-apiserver", "k8s.io/apimachinery", "k8s.io/api"} {
		if pkgPath == mod || strings.HasPrefix(pkgPath, mod+"/") {
			dir = filepath.Join(p.modcache, mod+"@"+k8sVersion, strings.TrimPrefix(pkgPath, mod))
			break
		}
	}
	msgs := map[string]map[string]protoField{}
	p.pkgs[pkgPath] = msgs
	data, err := os.ReadFile(filepath.Join(dir, "generated.proto"))
	if err != nil {
		return msgs
	}
	var cur map[string]protoField
	for _, line := range strings.Split(string(data), "\n") {
		if m := messageRe.FindStringSubmatch(line); m != nil {
			cur = map[string]protoField{}
			msgs[m[1]] = cur
			continue
		}
		if m := fieldRe.FindStringSubmatch(line); m != nil && cur != nil {
			n, _ := strconv.Atoi(m[4])
			cur[m[3]] = protoField{num: n, repeated: m[1] == "repeated " || strings.HasPrefix(m[2], "map<")}
		}
	}
	return msgs
}

// checkProto verifies that generated.proto declares the tag's name with the tag's
// number, repeated exactly when the Go type is a slice or map.
func (w *walker) checkProto(t reflect.Type, sf reflect.StructField, tag []string, ts string) {
	msgs := w.protos.load(t.PkgPath())
	where := goName(t) + "." + sf.Name
	msg, ok := msgs[t.Name()]
	if !ok {
		w.fail("%s: no message %s in generated.proto", where, t.Name())
		return
	}
	name := ""
	for _, part := range tag[2:] {
		if v, ok := strings.CutPrefix(part, "name="); ok {
			name = v
		}
	}
	if name == "" {
		// e.g. EphemeralContainer's embedded EphemeralContainerCommon: "bytes,1,req".
		name = strings.ToLower(sf.Name[:1]) + sf.Name[1:]
	}
	f, ok := msg[name]
	if !ok {
		w.fail("%s: generated.proto has no field %q", where, name)
		return
	}
	num, _ := strconv.Atoi(tag[1])
	if f.num != num {
		w.fail("%s: tag number %d, generated.proto %d", where, num, f.num)
	}
	rep := strings.HasPrefix(ts, "[]") || strings.HasPrefix(ts, "map[")
	if f.repeated != rep {
		w.fail("%s: Go type %s but generated.proto repeated=%v", where, ts, f.repeated)
	}
}
