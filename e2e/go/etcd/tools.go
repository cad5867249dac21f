//go:build tools

// Package tools pins the etcd server this module builds (kept apart from the
// Kubernetes module so the etcd client/server versions never mix).
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
