package pagetoken

import "testing"

// FuzzDecode: whatever token a client sends, Decode returns a position or an error that is the
// client's (InvalidArgument), never panics; a position it accepts encodes back to a token that
// decodes to the same position.
func FuzzDecode(f *testing.F) {
	filter := Filter("acc_1", "bdl_2")
	for _, seed := range []string{"", Encode(filter, Position{Key: "bdl_01", Seq: 3}), Encode(Filter("other"), Position{Key: "x"}),
		"not-a-token", "====", "AAAA"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		pos, ok, err := Decode(token, filter)
		if err != nil || !ok {
			return
		}
		again, ok, err := Decode(Encode(filter, pos), filter)
		if err != nil || !ok || again != pos {
			t.Fatalf("position %+v does not round-trip: %+v, %v, %v", pos, again, ok, err)
		}
	})
}
