//go:build tools

// Package tools pins upstream's sample-controller (k8s.io/sample-controller), a
// client-go operator of the Foo custom resource, which this module builds.
package tools

import (
	_ "k8s.io/sample-controller"
)
