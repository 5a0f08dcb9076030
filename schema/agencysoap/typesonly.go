//go:build ignore

// typesonly strips gowsdl's generated SOAP client from a generated file,
// leaving the types. The client (a port-type interface and its
// implementation on gowsdl's soap.Client) would link gowsdl's runtime into
// the gateway although the gateway never calls it: the SOAP transport and
// WS-Security are the gateway's own (cmd/gateway/internal/soapclient,
// soapsrv, wssec), because that runtime has no keep-alive, fault parsing or
// X.509 WS-Security. gowsdl stays what it is here: a generator.
//
// Usage (from go:generate): go run typesonly.go -file FILE
package main

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
)

func main() {
	file := flag.String("file", "", "the generated Go file to strip, in place")
	flag.Parse()
	if *file == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: go run typesonly.go -file FILE")
		os.Exit(2)
	}
	if err := strip(*file); err != nil {
		fmt.Fprintln(os.Stderr, "typesonly:", err)
		os.Exit(1)
	}
}

func strip(name string) error {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
	if err != nil {
		return err
	}
	client := map[string]bool{} // names of the client's types
	var kept, removed []ast.Decl
	for _, d := range f.Decls {
		if isClient(d, client) {
			removed = append(removed, d)
		} else {
			kept = append(kept, d)
		}
	}
	if len(client) == 0 {
		return fmt.Errorf("%s: no SOAP client found (has gowsdl's output changed?)", name)
	}
	f.Decls, kept = kept, nil
	for _, d := range f.Decls { // the methods of the client's types
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv != nil && client[recvType(fd)] {
			removed = append(removed, d)
		} else {
			kept = append(kept, d)
		}
	}
	f.Decls = kept
	// The removed declarations' comments (their doc comments and those
	// inside them) would otherwise be printed where they were.
	var cs []*ast.CommentGroup
	for _, c := range f.Comments {
		if !within(c, removed) {
			cs = append(cs, c)
		}
	}
	f.Comments = cs
	dropUnusedImports(f)
	var buf bytes.Buffer
	if err := format.Node(&buf, fset, f); err != nil {
		return err
	}
	out, err := format.Source(buf.Bytes())
	if err != nil {
		return err
	}
	return os.WriteFile(name, out, 0o644)
}

// isClient reports whether d declares part of the client: a struct with a
// field of a soap type (the port type's implementation), an interface (the
// only ones gowsdl writes are port types), or a function taking a soap type
// (the constructor). It adds the names of the client's types to client, so
// their methods can go too.
func isClient(d ast.Decl, client map[string]bool) bool {
	switch d := d.(type) {
	case *ast.GenDecl:
		if d.Tok != token.TYPE || len(d.Specs) != 1 {
			return false
		}
		ts := d.Specs[0].(*ast.TypeSpec)
		switch t := ts.Type.(type) {
		case *ast.InterfaceType:
			client[ts.Name.Name] = true
			return true
		case *ast.StructType:
			for _, fld := range t.Fields.List {
				if usesSOAP(fld.Type) {
					client[ts.Name.Name] = true
					return true
				}
			}
		}
	case *ast.FuncDecl:
		if d.Recv == nil {
			for _, p := range d.Type.Params.List {
				if usesSOAP(p.Type) {
					return true
				}
			}
		}
	}
	return false
}

func usesSOAP(e ast.Expr) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		if s, ok := n.(*ast.SelectorExpr); ok {
			if x, ok := s.X.(*ast.Ident); ok && x.Name == "soap" {
				found = true
			}
		}
		return !found
	})
	return found
}

func recvType(fd *ast.FuncDecl) string {
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// within reports whether c lies in one of decls, doc comment included.
func within(c *ast.CommentGroup, decls []ast.Decl) bool {
	for _, d := range decls {
		start := d.Pos()
		switch d := d.(type) {
		case *ast.GenDecl:
			if d.Doc != nil {
				start = d.Doc.Pos()
			}
		case *ast.FuncDecl:
			if d.Doc != nil {
				start = d.Doc.Pos()
			}
		}
		if c.Pos() >= start && c.End() <= d.End() {
			return true
		}
	}
	return false
}

// dropUnusedImports removes the imports no longer named in f (soap,
// context). A blank or dot import is kept.
func dropUnusedImports(f *ast.File) {
	used := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if s, ok := n.(*ast.SelectorExpr); ok {
			if x, ok := s.X.(*ast.Ident); ok {
				used[x.Name] = true
			}
		}
		return true
	})
	unused := func(imp *ast.ImportSpec) bool {
		path, _ := strconv.Unquote(imp.Path.Value)
		name := path[strings.LastIndex(path, "/")+1:]
		if imp.Name != nil {
			name = imp.Name.Name
		}
		return name != "_" && name != "." && !used[name]
	}
	var imps []*ast.ImportSpec
	for _, imp := range f.Imports {
		if !unused(imp) {
			imps = append(imps, imp)
		}
	}
	f.Imports = imps
	for _, d := range f.Decls {
		if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.IMPORT {
			var specs []ast.Spec
			for _, sp := range g.Specs {
				if !unused(sp.(*ast.ImportSpec)) {
					specs = append(specs, sp)
				}
			}
			g.Specs = specs
			// Without the removed lines, the kept imports would print
			// with gaps where those were: give them one position, and
			// the printer writes them one per line, with no blank lines.
			for _, sp := range specs {
				sp.(*ast.ImportSpec).Path.ValuePos = g.Lparen + 1
			}
		}
	}
}
