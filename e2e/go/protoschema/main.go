// Command protoschema generates the checked-in data of nestkube-protobuf from the
// Kubernetes Go types (see e2e/gen-protodata):
//
//	protoschema schema OUT.json            the field table (reflection over the scheme)
//	protoschema golden SAMPLES_DIR OUT_DIR  for each SAMPLES_DIR/NAME.json: NAME.pb (what
//	                                        client-go sends) and NAME.json (what
//	                                        kube-apiserver gets decoding it, re-encoded
//	                                        with encoding/json)
//	protoschema fuzz N SEED OUT_DIR         the same for random objects of every kind
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

const k8sVersion = "v0.37.2"

type jsonSchemaProps = apiextv1.JSONSchemaProps

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	must(clientgoscheme.AddToScheme(s))
	must(apiextv1.AddToScheme(s))
	// Options bodies (DeleteOptions, ...) may also name meta.k8s.io/v1.
	metav1.AddToGroupVersion(s, metav1.SchemeGroupVersion)
	return s
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "protoschema:", err)
		os.Exit(1)
	}
}

func main() {
	if len(os.Args) < 2 {
		must(fmt.Errorf("usage: protoschema schema OUT | golden SAMPLES OUT | fuzz N SEED OUT"))
	}
	scheme := newScheme()
	switch os.Args[1] {
	case "schema":
		s, err := buildSchema(scheme)
		must(err)
		must(writeSchema(s, os.Args[2]))
	case "golden":
		must(golden(scheme, os.Args[2], os.Args[3]))
	case "fuzz":
		n, err := strconv.Atoi(os.Args[2])
		must(err)
		seed, err := strconv.ParseInt(os.Args[3], 10, 64)
		must(err)
		must(fuzz(scheme, n, seed, os.Args[4]))
	default:
		must(fmt.Errorf("unknown mode %q", os.Args[1]))
	}
}

// writeSchema writes one line per kind and per type so diffs stay readable.
func writeSchema(s *Schema, out string) error {
	var b bytes.Buffer
	enc := func(v any) string {
		var bb bytes.Buffer
		e := json.NewEncoder(&bb)
		e.SetEscapeHTML(false)
		must(e.Encode(v))
		return strings.TrimSuffix(bb.String(), "\n")
	}
	b.WriteString("{\n\"comment\": " + enc(s.Comment) + ",\n\"kinds\": {\n")
	keys := sortedKeys(s.Kinds)
	for i, k := range keys {
		b.WriteString(enc(k) + ": " + enc(s.Kinds[k]) + comma(i, len(keys)) + "\n")
	}
	b.WriteString("},\n\"types\": {\n")
	tkeys := sortedKeys(s.Types)
	for i, k := range tkeys {
		b.WriteString(enc(k) + ": " + enc(s.Types[k]) + comma(i, len(tkeys)) + "\n")
	}
	b.WriteString("}\n}\n")
	return os.WriteFile(out, b.Bytes(), 0o644)
}

func comma(i, n int) string {
	if i == n-1 {
		return ""
	}
	return ","
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// roundTrip encodes obj exactly as client-go does (magic + runtime.Unknown) and
// decodes it as kube-apiserver does, returning the body and the decoded object's
// encoding/json form (HTML escaping off, so it compares byte for byte with serde_json).
func roundTrip(scheme *runtime.Scheme, obj runtime.Object) ([]byte, []byte, error) {
	ser := protobuf.NewSerializer(scheme, scheme)
	var pb bytes.Buffer
	if err := ser.Encode(obj, &pb); err != nil {
		return nil, nil, fmt.Errorf("encode: %w", err)
	}
	back, _, err := ser.Decode(pb.Bytes(), nil, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("decode: %w", err)
	}
	var js bytes.Buffer
	e := json.NewEncoder(&js)
	e.SetEscapeHTML(false)
	if err := e.Encode(back); err != nil {
		return nil, nil, fmt.Errorf("json: %w", err)
	}
	return pb.Bytes(), js.Bytes(), nil
}

func golden(scheme *runtime.Scheme, samples, out string) error {
	files, err := filepath.Glob(filepath.Join(samples, "*.json"))
	if err != nil {
		return err
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var tm runtime.TypeMeta
		if err := json.Unmarshal(data, &tm); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		gv, err := schema.ParseGroupVersion(tm.APIVersion)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		obj, err := scheme.New(gv.WithKind(tm.Kind))
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(obj); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		pb, js, err := roundTrip(scheme, obj)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		base := strings.TrimSuffix(filepath.Base(f), ".json")
		if err := os.WriteFile(filepath.Join(out, base+".pb"), pb, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, base+".json"), js, 0o644); err != nil {
			return err
		}
	}
	return nil
}
