package main

// The schema mode: walks every type registered in the scheme with reflection and
// writes the table that drives nestkube-protobuf's decoder.

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
)

// specials maps Go types with custom protobuf or JSON encodings to the markers
// the Rust decoder implements by hand.
var specials = map[string]string{
	"k8s.io/apimachinery/pkg/apis/meta/v1.Time":                                             "@time",
	"k8s.io/apimachinery/pkg/apis/meta/v1.MicroTime":                                        "@microtime",
	"k8s.io/apimachinery/pkg/apis/meta/v1.Duration":                                         "@duration",
	"k8s.io/apimachinery/pkg/apis/meta/v1.FieldsV1":                                         "@fieldsv1",
	"k8s.io/apimachinery/pkg/util/intstr.IntOrString":                                       "@intorstring",
	"k8s.io/apimachinery/pkg/api/resource.Quantity":                                         "@quantity",
	"k8s.io/apimachinery/pkg/runtime.RawExtension":                                          "@rawextension",
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1.JSON":                         "@json",
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1.JSONSchemaPropsOrArray":       "@schemaorarray",
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1.JSONSchemaPropsOrBool":        "@schemaorbool",
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1.JSONSchemaPropsOrStringArray": "@schemaorstringarray",
}

// specialDeps are message types that special types refer to by name in Rust.
var specialDeps = map[string][]string{
	"@schemaorarray":       {"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1.JSONSchemaProps"},
	"@schemaorbool":        {"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1.JSONSchemaProps"},
	"@schemaorstringarray": {"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1.JSONSchemaProps"},
}

// protoMessage is what go-to-protobuf generates for every message (gogo's
// ProtoMessage() marker is gone in k8s.io/api v0.37).
type protoMessage interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

var (
	protoMessageType  = reflect.TypeOf((*protoMessage)(nil)).Elem()
	jsonMarshalerType = reflect.TypeOf((*json.Marshaler)(nil)).Elem()
)

func goName(t reflect.Type) string { return t.PkgPath() + "." + t.Name() }

// TypeDef is one entry of "types": a struct's fields in Go declaration order, or
// a named slice that go-to-protobuf wraps in a message with `repeated items = 1`.
type TypeDef struct {
	Fields [][]any `json:"fields,omitempty"`
	Items  string  `json:"items,omitempty"`
}

// Schema is the whole table.
type Schema struct {
	Comment string              `json:"comment"`
	Kinds   map[string]string   `json:"kinds"`
	Types   map[string]*TypeDef `json:"types"`
}

type walker struct {
	types  map[string]*TypeDef
	errs   []string
	protos *protoFiles
}

func (w *walker) fail(format string, args ...any) {
	w.errs = append(w.errs, fmt.Sprintf(format, args...))
}

// typeString names t in the table's type language: scalars (string, bool, int32,
// int64, uint32, uint64, float32, float64, bytes), @specials, *T, []T, map[K]V, or
// a Go type name registered in types.
func (w *walker) typeString(t reflect.Type, where string) string {
	if t.Name() != "" {
		if s, ok := specials[goName(t)]; ok {
			for _, dep := range specialDeps[s] {
				if _, ok := w.types[dep]; !ok {
					w.fail("%s: special %s needs %s (not reached)", where, s, dep)
				}
			}
			return s
		}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return "*" + w.typeString(t.Elem(), where)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "bytes"
		}
		if t.Name() != "" && reflect.PointerTo(t).Implements(protoMessageType) {
			name := goName(t)
			if _, ok := w.types[name]; !ok {
				def := &TypeDef{}
				w.types[name] = def
				def.Items = w.typeString(t.Elem(), name)
				if strings.HasPrefix(def.Items, "[]") {
					w.fail("%s: nested slice in wrapper", name)
				}
			}
			return name
		}
		elem := w.typeString(t.Elem(), where)
		if strings.HasPrefix(elem, "[]") || strings.HasPrefix(elem, "map[") {
			w.fail("%s: %s is not representable in protobuf", where, t)
		}
		return "[]" + elem
	case reflect.Map:
		if t.Name() != "" && reflect.PointerTo(t).Implements(protoMessageType) {
			w.fail("%s: named map message %s unsupported", where, t)
		}
		return "map[" + w.typeString(t.Key(), where) + "]" + w.typeString(t.Elem(), where)
	case reflect.Struct:
		if t.Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(jsonMarshalerType) {
			w.fail("%s: %s has a custom MarshalJSON and no special marker", where, goName(t))
		}
		w.walkStruct(t)
		return goName(t)
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int32:
		return "int32"
	case reflect.Int64, reflect.Int:
		return "int64"
	case reflect.Uint32:
		return "uint32"
	case reflect.Uint64:
		return "uint64"
	case reflect.Float32:
		return "float32"
	case reflect.Float64:
		return "float64"
	}
	w.fail("%s: unsupported Go type %s", where, t)
	return "?"
}

// wireOf is the protobuf encoding the struct tag must name for a Go type string.
func wireOf(ts string) string {
	ts = strings.TrimPrefix(ts, "*")
	ts = strings.TrimPrefix(ts, "[]")
	switch ts {
	case "bool", "int32", "int64", "uint32", "uint64":
		return "varint"
	case "float64":
		return "fixed64"
	case "float32":
		return "fixed32"
	}
	return "bytes"
}

func (w *walker) walkStruct(t reflect.Type) {
	name := goName(t)
	if _, ok := w.types[name]; ok {
		return
	}
	def := &TypeDef{Fields: [][]any{}}
	w.types[name] = def
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		jsonTag := sf.Tag.Get("json")
		if jsonTag == "-" {
			continue
		}
		parts := strings.Split(jsonTag, ",")
		jsonName := parts[0]
		flags := ""
		for _, o := range parts[1:] {
			switch o {
			case "omitempty":
				flags += "o"
			case "omitzero":
				flags += "z"
			case "inline", "":
			default:
				w.fail("%s.%s: json option %q unsupported", name, sf.Name, o)
			}
		}
		where := name + "." + sf.Name
		if jsonName == "" {
			if sf.Anonymous && sf.Type.Kind() == reflect.Struct {
				flags += "i"
			} else if sf.Anonymous {
				w.fail("%s: embedded non-struct", where)
			} else {
				jsonName = sf.Name
			}
		}
		num := 0
		pb := sf.Tag.Get("protobuf")
		ts := w.typeString(sf.Type, where)
		if pb != "" && pb != "-" {
			pp := strings.Split(pb, ",")
			n, err := strconv.Atoi(pp[1])
			if err != nil {
				w.fail("%s: bad protobuf tag %q", where, pb)
			}
			num = n
			// The tags' encodings are hand-written and often wrong (e.g. "bytes" for
			// bools, "opt" for slices); go-to-protobuf keeps only their numbers and
			// names, so the Go type decides the wire format and generated.proto must
			// agree on the number.
			w.checkProto(t, sf, pp, ts)
		}
		if flags != "" {
			def.Fields = append(def.Fields, []any{num, jsonName, ts, flags})
		} else {
			def.Fields = append(def.Fields, []any{num, jsonName, ts})
		}
	}
}

func buildSchema(scheme *runtime.Scheme) (*Schema, error) {
	w := &walker{types: map[string]*TypeDef{}, protos: newProtoFiles()}
	// Special types that refer to other messages need those walked first.
	w.walkStruct(reflect.TypeOf(jsonSchemaProps{}))
	kinds := map[string]string{}
	gvks := scheme.AllKnownTypes()
	keys := make([]string, 0, len(gvks))
	for gvk, t := range gvks {
		if gvk.Version == runtime.APIVersionInternal {
			continue
		}
		if !reflect.PointerTo(t).Implements(protoMessageType) {
			continue
		}
		key := gvk.Version + "/" + gvk.Kind
		if gvk.Group != "" {
			key = gvk.Group + "/" + key
		}
		kinds[key] = w.typeString(t, key)
		keys = append(keys, key)
	}
	sort.Strings(keys)
	if len(w.errs) > 0 {
		sort.Strings(w.errs)
		return nil, fmt.Errorf("schema errors:\n  %s", strings.Join(w.errs, "\n  "))
	}
	return &Schema{
		Comment: "Generated by e2e/gen-protodata from k8s.io/api, apimachinery, client-go and apiextensions-apiserver " + k8sVersion + "; do not edit. Field: [protobuf number (0 = not in protobuf), JSON name, type, flags o=omitempty z=omitzero i=inline].",
		Kinds:   kinds,
		Types:   w.types,
	}, nil
}
