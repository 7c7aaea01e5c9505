package layouts_test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/vmfs/vmfs/layouts"
)

// TestVisitBitmap checks the runs read from a sector bitmap in both bit
// orders: runs follow the bits from off to end, whole bytes are skipped
// without losing a run edge, Data runs carry data+offset, and fn's error
// ends the walk.
func TestVisitBitmap(t *testing.T) {
	type run struct {
		o, l int64
		k    layouts.Kind
		f    int64
	}
	const unit = 512
	cases := []struct {
		name        string
		bits        []byte
		msb         bool
		bstart, off int64
		end, data   int64
		want        []run
	}{
		{"msb first sector", []byte{0x80, 0}, true, 0, 0, 16 * unit, 1000,
			[]run{{0, unit, layouts.Data, 1000}, {unit, 15 * unit, layouts.Hole, 1000 + unit}}},
		{"lsb first sector", []byte{0x01, 0}, false, 0, 0, 16 * unit, 1000,
			[]run{{0, unit, layouts.Data, 1000}, {unit, 15 * unit, layouts.Hole, 1000 + unit}}},
		{"msb byte skip then edge", []byte{0xff, 0xff, 0xfe}, true, 0, 0, 24 * unit, 0,
			[]run{{0, 23 * unit, layouts.Data, 0}, {23 * unit, unit, layouts.Hole, 23 * unit}}},
		{"lsb byte skip then edge", []byte{0xff, 0xff, 0x7f}, false, 0, 0, 24 * unit, 0,
			[]run{{0, 23 * unit, layouts.Data, 0}, {23 * unit, unit, layouts.Hole, 23 * unit}}},
		{"mid-sector range in a later block", []byte{0x0f}, true, 8 * unit, 8*unit + 100, 8*unit + 6*unit, -8 * unit,
			[]run{{8*unit + 100, 4*unit - 100, layouts.Hole, 100}, {12 * unit, 2 * unit, layouts.Data, 4 * unit}}},
		{"end inside a sector", []byte{0xf0}, true, 0, 0, 4*unit + 10, 0,
			[]run{{0, 4 * unit, layouts.Data, 0}, {4 * unit, 10, layouts.Hole, 4 * unit}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []run
			err := layouts.VisitBitmap(c.bits, c.msb, unit, c.bstart, c.off, c.end, c.data, func(o, l int64, k layouts.Kind, f int64) error {
				got = append(got, run{o, l, k, f})
				return nil
			})
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("runs %v, %v; want %v", got, err, c.want)
			}
		})
	}
	stop := errors.New("stop")
	calls := 0
	err := layouts.VisitBitmap([]byte{0xaa}, true, unit, 0, 0, 8*unit, 0, func(o, l int64, k layouts.Kind, f int64) error {
		calls++
		return fmt.Errorf("at %d: %w", o, stop)
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("error %v after %d calls; want stop after 1", err, calls)
	}
}
