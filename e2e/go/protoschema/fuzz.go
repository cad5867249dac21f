package main

// The fuzz mode: one random object per kind (seeded, deterministic), encoded and
// decoded like golden mode. Special types get valid random values.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/randfill"
)

func fuzz(scheme *runtime.Scheme, n int, seed int64, out string) error {
	f := randfill.NewWithSeed(seed).NilChance(0.4).NumElements(0, 1).MaxDepth(6).Funcs(
		func(t *metav1.Time, c randfill.Continue) {
			if c.Intn(5) == 0 {
				*t = metav1.Time{}
				return
			}
			*t = metav1.Unix(c.Int63n(4_000_000_000), 0)
		},
		func(t *metav1.MicroTime, c randfill.Continue) {
			*t = metav1.NewMicroTime(time.Unix(c.Int63n(4_000_000_000), c.Int63n(1_000_000_000)).Truncate(time.Microsecond))
		},
		func(q *resource.Quantity, c randfill.Continue) {
			formats := []resource.Format{resource.DecimalSI, resource.BinarySI, resource.DecimalExponent}
			*q = *resource.NewMilliQuantity(c.Int63n(1<<40), formats[c.Intn(3)])
		},
		func(x *intstr.IntOrString, c randfill.Continue) {
			if c.Bool() {
				*x = intstr.FromInt32(c.Int31() - 1<<30)
			} else {
				*x = intstr.FromString(c.String(6))
			}
		},
		func(r *runtime.RawExtension, c randfill.Continue) {
			if c.Bool() {
				r.Raw = []byte(`{"apiVersion":"v1","kind":"Pod","n":[1,2.5,"x"]}`)
			}
		},
		func(fv *metav1.FieldsV1, c randfill.Continue) {
			*fv = metav1.FieldsV1{}
			must(json.Unmarshal([]byte(`{"f:metadata":{"f:labels":{".":{}}}}`), fv))
		},
		func(j *apiextv1.JSON, c randfill.Continue) {
			vals := []string{`"s"`, `1`, `{"a":[true,null]}`}
			j.Raw = []byte(vals[c.Intn(len(vals))])
		},
		func(d *metav1.Duration, c randfill.Continue) {
			d.Duration = time.Duration(c.Int63n(1 << 50))
		},
	)
	gvks := scheme.AllKnownTypes()
	keys := make([]string, 0, len(gvks))
	byKey := map[string]reflect.Type{}
	for gvk, t := range gvks {
		if gvk.Version == runtime.APIVersionInternal || strings.HasSuffix(gvk.Kind, "List") || gvk.Kind == "WatchEvent" {
			continue
		}
		if !reflect.PointerTo(t).Implements(protoMessageType) {
			continue
		}
		key := strings.ReplaceAll(gvk.Group+"_"+gvk.Version+"_"+gvk.Kind, ".", "-")
		keys = append(keys, key)
		byKey[key] = t
		_ = gvk
	}
	sort.Strings(keys)
	for _, key := range keys {
		parts := strings.SplitN(key, "_", 3)
		group := strings.ReplaceAll(parts[0], "-", ".")
		gv := parts[1]
		if group != "" {
			gv = group + "/" + gv
		}
		for i := 0; i < n; i++ {
			obj := reflect.New(byKey[key]).Interface().(runtime.Object)
			f.Fill(obj)
			tm := map[string]string{"apiVersion": gv, "kind": parts[2]}
			b, _ := json.Marshal(tm)
			must(json.Unmarshal(b, obj))
			pb, js, err := roundTrip(scheme, obj)
			if err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			name := fmt.Sprintf("%s.%d", key, i)
			if err := os.WriteFile(filepath.Join(out, name+".pb"), pb, 0o644); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(out, name+".json"), js, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}
