package convert

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/vmfs/vmfs/internal/overlay"
)

// The record of a conversion lives in the overlay directory: read back as
// written, kept by a reopening, discarded by Fresh with the writes.
func TestMarkerLivesWithTheOverlay(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "overlay")
	ov, err := overlay.Open(dir, overlay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ov.Close()
	if m, err := ReadMarker(dir); err != nil || m != nil {
		t.Fatalf("a new overlay holds a conversion: %+v %v", m, err)
	}
	want := Marker{Converted: time.Date(2026, 12, 7, 1, 2, 3, 0, time.UTC), Guest: "debian 12.15", Type: "linux",
		Engine: "virt-v2v-in-place", Descriptor: "debian12.xml", NICNames: []string{"00:50:56:3f:00:19=ens192"}, Seconds: 171}
	if err := WriteMarker(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadMarker(dir)
	if err != nil || got == nil || !reflect.DeepEqual(*got, want) {
		t.Fatalf("read back %+v %v, want %+v", got, err, want)
	}
	if ents, _ := os.ReadDir(dir); len(ents) == 0 {
		t.Fatal("empty overlay dir")
	} else {
		for _, e := range ents {
			if e.Name() != MarkerName && filepath.Ext(e.Name()) == ".tmp" {
				t.Errorf("left behind: %s", e.Name())
			}
		}
	}
	for _, fresh := range []bool{false, true} {
		ov, err := overlay.Open(dir, overlay.Options{Fresh: fresh})
		if err != nil {
			t.Fatal(err)
		}
		ov.Close()
		m, err := ReadMarker(dir)
		if err != nil {
			t.Fatal(err)
		}
		if (m != nil) == fresh {
			t.Errorf("reopened with Fresh=%v: conversion recorded = %v", fresh, m != nil)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, MarkerName), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMarker(dir); err == nil {
		t.Error("a damaged record reads without error")
	}
}
