package jsondoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// referenceParse is the parser Parse replaced, built on encoding/json's
// Decoder.Token: the differential tests hold Parse to its verdicts and trees.
func referenceParse(payload []byte, maxDepth int) (*Value, error) {
	maxDepth, err := precheck(payload, maxDepth)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	p := refParser{dec: dec, maxDepth: maxDepth}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &SyntaxError{Reason: "data after the document"}
	}
	return v, nil
}

type refParser struct {
	dec      *json.Decoder
	maxDepth int
}

func (p *refParser) token() (json.Token, error) {
	t, err := p.dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &SyntaxError{Reason: "unexpected end of document"}
		}
		return nil, &SyntaxError{Reason: err.Error()}
	}
	return t, nil
}

func (p *refParser) value(depth int) (*Value, error) {
	t, err := p.token()
	if err != nil {
		return nil, err
	}
	switch t := t.(type) {
	case nil:
		return &Value{Kind: Null}, nil
	case bool:
		return &Value{Kind: Bool, Bool: t}, nil
	case json.Number:
		return &Value{Kind: Number, Str: string(t)}, nil
	case string:
		return &Value{Kind: String, Str: t}, nil
	case json.Delim:
		if depth+1 > p.maxDepth {
			return nil, &SyntaxError{Reason: fmt.Sprintf("nesting deeper than %d levels", p.maxDepth)}
		}
		switch t {
		case '{':
			return p.object(depth + 1)
		case '[':
			return p.array(depth + 1)
		}
	}
	return nil, &SyntaxError{Reason: fmt.Sprintf("unexpected token %v", t)}
}

func (p *refParser) object(depth int) (*Value, error) {
	v := &Value{Kind: Object}
	seen := map[string]bool{}
	for p.dec.More() {
		t, err := p.token()
		if err != nil {
			return nil, err
		}
		name, ok := t.(string)
		if !ok {
			return nil, &SyntaxError{Reason: "object member name is not a string"}
		}
		if seen[name] {
			return nil, &SyntaxError{Reason: fmt.Sprintf("duplicate member name %q", truncate(name))}
		}
		seen[name] = true
		mv, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		v.Members = append(v.Members, Member{name, mv})
	}
	if _, err := p.token(); err != nil {
		return nil, err
	}
	return v, nil
}

func (p *refParser) array(depth int) (*Value, error) {
	v := &Value{Kind: Array, Items: []*Value{}}
	for p.dec.More() {
		iv, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		v.Items = append(v.Items, iv)
	}
	if _, err := p.token(); err != nil {
		return nil, err
	}
	return v, nil
}
