package app

import (
	"reflect"
	"strings"
	"testing"

	"github.com/oidcflow/oidcflow/internal/config"
)

func TestReadCodecSettings(t *testing.T) {
	env := func(vars ...string) *config.Env {
		m := map[string]string{}
		for i := 0; i+1 < len(vars); i += 2 {
			m[vars[i]] = vars[i+1]
		}
		e, err := config.New(func(k string) (string, bool) { v, ok := m[k]; return v, ok })
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	s, err := ReadCodecSettings(env("OIDCFLOW_CODEC_TLS_CERT", "c.pem", "OIDCFLOW_CODEC_TLS_KEY", "k.pem"))
	if err != nil {
		t.Fatal(err)
	}
	want := CodecSettings{Listen: "127.0.0.1:8234", CertFile: "c.pem", KeyFile: "k.pem",
		Origins: []string{"http://127.0.0.1:8233"}, Audience: "temporal"}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("defaults: %+v, want %+v", s, want)
	}
	s, err = ReadCodecSettings(env("OIDCFLOW_CODEC_TLS_CERT", "c.pem", "OIDCFLOW_CODEC_TLS_KEY", "k.pem",
		"OIDCFLOW_CODEC_ORIGINS", "http://127.0.0.1:8233, https://ui.example.com http://localhost:8233",
		"OIDCFLOW_CODEC_LISTEN", "127.0.0.1:9443", "OIDCFLOW_TEMPORAL_AUDIENCE", "https://temporal.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Origins) != 3 || s.Origins[1] != "https://ui.example.com" || s.Listen != "127.0.0.1:9443" || s.Audience != "https://temporal.example.com" {
		t.Errorf("set: %+v", s)
	}
	for _, missing := range []string{"OIDCFLOW_CODEC_TLS_CERT", "OIDCFLOW_CODEC_TLS_KEY"} {
		vars := []string{"OIDCFLOW_CODEC_TLS_CERT", "c.pem", "OIDCFLOW_CODEC_TLS_KEY", "k.pem"}
		for i := 0; i < len(vars); i += 2 {
			if vars[i] == missing {
				vars[i+1] = ""
			}
		}
		if _, err := ReadCodecSettings(env(vars...)); err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("without %s: %v", missing, err)
		}
	}
}
