package main

import (
	"reflect"
	"testing"
)

func TestCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want runner
	}{
		{nil, runWorker},
		{[]string{"codec-server"}, runCodecServer},
		{[]string{"codec"}, nil},
		{[]string{"codec-server", "--listen=:1"}, nil},
	} {
		got, err := command(tc.args)
		if (err == nil) != (tc.want != nil) {
			t.Errorf("%q: err %v", tc.args, err)
			continue
		}
		if tc.want != nil && reflect.ValueOf(got).Pointer() != reflect.ValueOf(tc.want).Pointer() {
			t.Errorf("%q: wrong command", tc.args)
		}
	}
}
