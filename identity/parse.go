package identity

import (
	"fmt"
	"strings"
)

// maxPolicyText and maxPolicyDepth bound ParsePolicy's work.
const (
	maxPolicyText  = 4096
	maxPolicyDepth = 32
)

// ParsePolicy reads a policy in the form its String method prints, for configuration:
//
//	all(anyRole(db-approver, admin), not(role(contractor)))
//	any(permission(can_approve_invoice), department(finance))
//
// Names: role(r), anyRole(r, ...), permission(p), department(d), sameDepartment(d),
// all(...), any(...), not(p). Arguments are trimmed of spaces and may hold any character
// but "(", ")" and ",". String(ParsePolicy(s)) gives s back in canonical spacing.
func ParsePolicy(s string) (Policy, error) {
	if len(s) > maxPolicyText {
		return nil, configError("policy text is %d bytes, more than %d", len(s), maxPolicyText)
	}
	p := &policyParser{s: s}
	pol, err := p.policy(0)
	if err != nil {
		return nil, err
	}
	if p.skipSpace(); p.i != len(p.s) {
		return nil, p.errorf("unexpected %q after the policy", p.s[p.i:])
	}
	return pol, nil
}

type policyParser struct {
	s string
	i int
}

func (p *policyParser) errorf(format string, args ...any) error {
	return configError("policy %s at offset %d: %s", quote(p.s), p.i, fmt.Sprintf(format, args...))
}

func (p *policyParser) skipSpace() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n') {
		p.i++
	}
}

// word reads up to the next "(", ")" or ",", trimmed.
func (p *policyParser) word() string {
	start := p.i
	for p.i < len(p.s) && !strings.ContainsRune("(),", rune(p.s[p.i])) {
		p.i++
	}
	return strings.TrimSpace(p.s[start:p.i])
}

func (p *policyParser) expect(c byte) error {
	p.skipSpace()
	if p.i >= len(p.s) || p.s[p.i] != c {
		return p.errorf("want %q", c)
	}
	p.i++
	return nil
}

func (p *policyParser) policy(depth int) (Policy, error) {
	if depth > maxPolicyDepth {
		return nil, p.errorf("nested deeper than %d", maxPolicyDepth)
	}
	name := p.word()
	if err := p.expect('('); err != nil {
		return nil, err
	}
	var out Policy
	switch name {
	case "all", "any", "not":
		var ps []Policy
		p.skipSpace()
		for p.i < len(p.s) && p.s[p.i] != ')' {
			sub, err := p.policy(depth + 1)
			if err != nil {
				return nil, err
			}
			ps = append(ps, sub)
			p.skipSpace()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
				p.skipSpace()
			} else if p.i < len(p.s) && p.s[p.i] != ')' {
				return nil, p.errorf("want \",\" or \")\"")
			}
		}
		switch name {
		case "all":
			out = All(ps...)
		case "any":
			out = Any(ps...)
		default:
			if len(ps) != 1 {
				return nil, p.errorf("not takes one policy, got %d", len(ps))
			}
			out = Not(ps[0])
		}
	case "role", "permission", "department", "sameDepartment", "anyRole":
		var args []string
		for {
			w := p.word()
			if w != "" {
				args = append(args, w)
			}
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
				continue
			}
			break
		}
		if name == "anyRole" {
			out = AnyRole(args...)
			break
		}
		if len(args) != 1 {
			return nil, p.errorf("%s takes one name, got %d", name, len(args))
		}
		switch name {
		case "role":
			out = HasRole(args[0])
		case "permission":
			out = HasPermission(args[0])
		case "department":
			out = InDepartment(args[0])
		default:
			out = SameDepartment(args[0])
		}
	default:
		return nil, p.errorf("unknown policy %q (want role, anyRole, permission, department, sameDepartment, all, any or not)", name)
	}
	if err := p.expect(')'); err != nil {
		return nil, err
	}
	return out, nil
}
