package main

import "k8s.io/apimachinery/pkg/runtime"

func fuzz(scheme *runtime.Scheme, n int, seed int64, out string) error { return nil }
