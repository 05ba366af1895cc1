package envelope

import "testing"

// BenchmarkSeal and BenchmarkOpen measure one envelope with realistic token sizes (1 KiB
// ID token, 1 KiB access token, 64-byte refresh token) and report its size.
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
	for _, kc := range kemCases {
		b.Run(kc.name, func(b *testing.B) {
			k := mustKeyPair(b, "bench", kc.kem)
			c := benchContents()
			var n int
			for b.Loop() {
				s, err := Seal(k.Public(), testBinding(), c)
				if err != nil {
					b.Fatal(err)
				}
				n = len(s)
			}
			b.ReportMetric(float64(n), "envelope-bytes")
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, kc := range kemCases {
		b.Run(kc.name, func(b *testing.B) {
			k := mustKeyPair(b, "bench", kc.kem)
			r := mustKeyring(b, k)
			s, err := Seal(k.Public(), testBinding(), benchContents())
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
