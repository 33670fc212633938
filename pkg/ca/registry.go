package ca

import (
	"fmt"
	"sort"
	"strings"
)

// Registry holds the configured CAs by name and says which one serves a product: by product id
// ("dv-wildcard"), else by validation type ("DV", "OV", "EV"), else the default route "*". An
// application records the name of the CA it went to, so its polls reach the same CA even if the
// routes change later.
type Registry struct {
	clients map[string]Client
	routes  map[string]string
}

// NewRegistry checks that every route names a configured CA and that there is a default route.
func NewRegistry(clients map[string]Client, routes map[string]string) (*Registry, error) {
	if len(clients) == 0 {
		return nil, fmt.Errorf("no CA is configured")
	}
	for key, name := range routes {
		if _, ok := clients[name]; !ok {
			return nil, fmt.Errorf("route %q names CA %q, which is not configured (configured: %s)", key, name, strings.Join(names(clients), ", "))
		}
	}
	if _, ok := routes["*"]; !ok {
		return nil, fmt.Errorf(`no default route "*": every product needs a CA`)
	}
	return &Registry{clients: clients, routes: routes}, nil
}

// Single is a registry of one CA serving every product.
func Single(name string, c Client) *Registry {
	return &Registry{clients: map[string]Client{name: c}, routes: map[string]string{"*": name}}
}

// Route returns the CA for a product.
func (r *Registry) Route(productID, validation string) (string, Client) {
	name, ok := r.routes[productID]
	if !ok {
		if name, ok = r.routes[validation]; !ok {
			name = r.routes["*"]
		}
	}
	return name, r.clients[name]
}

// Client returns the CA of the given name.
func (r *Registry) Client(name string) (Client, bool) {
	c, ok := r.clients[name]
	return c, ok
}

// Names lists the configured CAs, sorted.
func (r *Registry) Names() []string { return names(r.clients) }

func names(m map[string]Client) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
