package policytest

import "testing"

func TestPolicyIsValid(t *testing.T) {
	for _, p := range []interface{ Validate() error }{Policy(), Enforcing()} {
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
	}
}
