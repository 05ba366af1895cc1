package envelope

import "testing"

// BenchmarkSeal and BenchmarkOpen measure one envelope of each format with realistic token
// sizes (1 KiB ID token, 1 KiB access token, 64-byte refresh token, and in version 2 a start's
// commitments: id, issue time, input digest, no run) and report its size.
func benchContents() Contents {
	c := testContents()
	c.IDToken = string(make([]byte, 1024))
	c.AccessToken = string(make([]byte, 1024))
	c.RefreshToken = string(make([]byte, 64))
	for _, p := range []*string{&c.IDToken, &c.AccessToken, &c.RefreshToken} {
		b := []byte(*p)
		for i := range b {
			b[i] = 'a' + byte(i%26)
		}
		*p = string(b)
	}
	return c
}

func BenchmarkSeal(b *testing.B) {
	for _, sc := range sealers {
		for _, kc := range kemCases {
			b.Run(sc.name+"/"+kc.name, func(b *testing.B) {
				k := mustKeyPair(b, "bench", kc.kem)
				c := benchContents()
				var n int
				for b.Loop() {
					s, err := sc.seal(k.Public(), testBinding(), c)
					if err != nil {
						b.Fatal(err)
					}
					n = len(s)
				}
				b.ReportMetric(float64(n), "envelope-bytes")
			})
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, sc := range sealers {
		for _, kc := range kemCases {
			b.Run(sc.name+"/"+kc.name, func(b *testing.B) {
				k := mustKeyPair(b, "bench", kc.kem)
				r := mustKeyring(b, k)
				s, err := sc.seal(k.Public(), testBinding(), benchContents())
				if err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					if _, err := r.Open(testBinding(), s); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(s)), "envelope-bytes")
			})
		}
	}
}
