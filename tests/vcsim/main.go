// Command vcsim is the test vCenter for golden's Rust test suite.
//
// It runs govmomi's vCenter simulator (SOAP on /sdk, vAPI REST on /rest) from the
// Debian package golang-github-vmware-govmomi-dev (0.24) and adds what the tests need:
//
//   - readiness files: -inventory-file (datacenters, folders, datastores, clusters,
//     hosts, pools, networks and VMs with their morefs) and then -url-file (base URL),
//     both written atomically, the URL file last;
//   - fix-ups for vcsim 0.24 quirks in the content-library API (-fixups, default on):
//     local- and subscribed-library create refuse a name another library already has
//     (compared case-insensitively, like find; 400 already_exists, nothing created),
//     VMTX create fills a missing placement from the source VM and keeps the description,
//     VMTX deploy accepts cluster/host placement and yields a real (powered-on) VM,
//     subscribed-library create accepts a subscription_url ending in /lib.json,
//     and an OVF item captured from a VM (POST /rest/com/vmware/vcenter/ovf/library-item
//     with source vm-N) gets a <name>.ovf descriptor with the VM's guest id, hardware
//     version, numCPU and memoryMB, listed in the item's files, so that it can be
//     deployed (stock vcsim creates the item without files, and deploy fails with
//     "no such file");
//     OVF deploy (POST /rest/com/vmware/vcenter/ovf/library-item/id:<item>?~action=deploy)
//     refuses, as a failed deploy (200, no VM created), a target folder, default
//     datastore and resource pool that are not all in one datacenter (invalid_argument)
//     and a VM name that a VM in the target folder (default: the pool's datacenter's
//     VM folder) already has (already_exists, vim.fault.DuplicateName); vcsim 0.24
//     deploys both, the second VM of a name with directory "<name> (0)";
//     REST VM delete (DELETE /rest/vcenter/vm/<id>) of a powered-on VM is refused with
//     400 not_allowed_in_current_state, as vCenter does (vcsim 0.24 answers 200 and
//     keeps the VM);
//   - /__fault: POST a rule to inject HTTP errors/delays, GET lists rules with hit
//     counts, DELETE clears them (no auth);
//   - cleanup on SIGINT/SIGTERM: the server is closed and the datastore temp dirs
//     (created under $TMPDIR) are removed.
//
// Each fix-up is commented where it is implemented; -fixups=false gives stock vcsim.
// Build: bash tests/vcsim/build.sh.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vapi/rest"
	vapi "github.com/vmware/govmomi/vapi/simulator" // registers the /rest endpoints
	"github.com/vmware/govmomi/vapi/vcenter"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

func main() {
	listen := flag.String("l", "127.0.0.1:0", "listen address")
	urlFile := flag.String("url-file", "", "write the base URL here once ready (atomically, last)")
	invFile := flag.String("inventory-file", "", "write the inventory JSON here (atomically, before -url-file)")
	user := flag.String("username", "user", "SOAP login user name")
	pass := flag.String("password", "pass", "SOAP login password")
	useTLS := flag.Bool("tls", false, "serve https (self-signed httptest certificate)")
	m := simulator.VPX()
	flag.IntVar(&m.Datacenter, "dc", m.Datacenter, "datacenters")
	flag.IntVar(&m.Cluster, "cluster", m.Cluster, "clusters per datacenter")
	flag.IntVar(&m.ClusterHost, "host", m.ClusterHost, "hosts per cluster")
	flag.IntVar(&m.Host, "standalone-host", m.Host, "standalone hosts per datacenter")
	flag.IntVar(&m.Datastore, "ds", m.Datastore, "datastores per datacenter (>= 1)")
	flag.IntVar(&m.Machine, "vm", m.Machine, "VMs per cluster and per standalone host")
	flag.IntVar(&m.Pool, "pool", m.Pool, "child resource pools per cluster")
	flag.IntVar(&m.Folder, "folder", m.Folder, "datacenters to put in folders F0.. (with their own vm/host/datastore/network F0 sub-folders)")
	flag.IntVar(&m.Portgroup, "pg", m.Portgroup, "DVS portgroups per datacenter (0: only 'VM Network')")
	flag.BoolVar(&m.Autostart, "autostart", m.Autostart, "power on the model VMs")
	flag.IntVar(&m.DelayConfig.Delay, "delay", 0, "delay every SOAP call by this many ms")
	methodDelay := flag.String("method-delay", "", "per-method SOAP delays: NAME=MS[,NAME=MS]")
	flag.Float64Var(&m.DelayConfig.DelayJitter, "jitter", 0, "delay jitter (coefficient of variation)")
	flag.DurationVar(&simulator.SessionIdleTimeout, "session-timeout", 0, "expire idle SOAP/REST sessions (0: never)")
	fixups := flag.Bool("fixups", true, "apply the content-library fix-ups")
	flag.BoolVar(&simulator.Trace, "trace", false, "log SOAP traffic to stderr")
	flag.Parse()

	if *methodDelay != "" {
		m.DelayConfig.MethodDelay = map[string]int{}
		for _, kv := range strings.Split(*methodDelay, ",") {
			name, ms, ok := strings.Cut(kv, "=")
			n, err := strconv.Atoi(ms)
			if !ok || err != nil {
				log.Fatalf("bad -method-delay entry %q (want NAME=MS)", kv)
			}
			m.DelayConfig.MethodDelay[name] = n
		}
	}

	if err := m.Create(); err != nil {
		log.Fatalf("create model: %v", err)
	}
	m.Service.RegisterEndpoints = true
	m.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*user, *pass)}
	if *useTLS {
		m.Service.TLS = new(tls.Config)
	}
	s := m.Service.NewServer()

	// Wrap vcsim's mux: fault layer -> fix-ups -> vcsim. The server is already
	// accepting, but nobody knows the port until the URL file is written.
	var h http.Handler = s.Config.Handler
	if *fixups {
		h = &fixer{next: h, sdk: s.URL}
	}
	s.Config.Handler = &faults{next: h}

	base := url.URL{Scheme: s.URL.Scheme, Host: s.URL.Host}
	if *invFile != "" {
		writeFile(*invFile, inventory(base.String()))
	}
	if *urlFile != "" {
		writeFile(*urlFile, []byte(base.String()+"\n"))
	}
	fmt.Println(base.String())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	s.Close()
	m.Remove()
	os.Exit(0)
}

// writeFile writes data to path atomically (temp file in the same dir + rename).
func writeFile(path string, data []byte) {
	f, err := os.CreateTemp(filepath.Dir(path), ".vcsim-*")
	if err == nil {
		_, err = f.Write(data)
		if err == nil {
			err = f.Chmod(0o644)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), path)
		}
	}
	if err != nil {
		log.Fatalf("write %s: %v", path, err)
	}
}

// ---- inventory.json -------------------------------------------------------

type named struct {
	Name string `json:"name"`
	ID   string `json:"id"`
}

type cluster struct {
	Name         string   `json:"name"`
	ID           string   `json:"id"`
	ResourcePool string   `json:"resource_pool"`
	Hosts        []string `json:"hosts"`
}

type host struct { // standalone host
	Name            string `json:"name"`
	ID              string `json:"id"`
	ComputeResource string `json:"compute_resource"`
	ResourcePool    string `json:"resource_pool"`
}

type pool struct {
	Name  string `json:"name"`
	ID    string `json:"id"`
	Owner string `json:"owner"` // cluster or compute resource
}

type datacenter struct {
	Name            string    `json:"name"`
	ID              string    `json:"id"`
	VMFolder        string    `json:"vm_folder"`
	HostFolder      string    `json:"host_folder"`
	DatastoreFolder string    `json:"datastore_folder"`
	NetworkFolder   string    `json:"network_folder"`
	Datastores      []named   `json:"datastores"`
	Clusters        []cluster `json:"clusters"`
	Hosts           []host    `json:"hosts"`
	ResourcePools   []pool    `json:"resource_pools"`
	Networks        []named   `json:"networks"`
	VMs             []named   `json:"vms"`
}

// inventory reads the model straight from simulator.Map (safe: no request is served yet).
func inventory(u string) []byte {
	dcs := map[string]*datacenter{}
	for _, e := range simulator.Map.All("Datacenter") {
		dc := e.(*simulator.Datacenter)
		dcs[dc.Self.Value] = &datacenter{Name: dc.Name, ID: dc.Self.Value,
			VMFolder: dc.VmFolder.Value, HostFolder: dc.HostFolder.Value,
			DatastoreFolder: dc.DatastoreFolder.Value, NetworkFolder: dc.NetworkFolder.Value,
			Datastores: []named{}, Clusters: []cluster{}, Hosts: []host{},
			ResourcePools: []pool{}, Networks: []named{}, VMs: []named{}}
	}
	each := func(kind string, f func(dc *datacenter, e *mo.ManagedEntity, obj mo.Entity)) {
		all := simulator.Map.All(kind)
		sort.Slice(all, func(i, j int) bool {
			a, b := all[i].Entity(), all[j].Entity()
			return a.Name < b.Name || a.Name == b.Name && a.Self.Value < b.Self.Value
		})
		for _, obj := range all {
			for p := obj.Entity().Parent; p != nil; p = simulator.Map.Get(*p).(mo.Entity).Entity().Parent {
				if dc := dcs[p.Value]; p.Type == "Datacenter" && dc != nil {
					f(dc, obj.Entity(), obj)
					break
				}
			}
		}
	}
	each("Datastore", func(dc *datacenter, e *mo.ManagedEntity, _ mo.Entity) {
		dc.Datastores = append(dc.Datastores, named{e.Name, e.Self.Value})
	})
	each("ClusterComputeResource", func(dc *datacenter, e *mo.ManagedEntity, obj mo.Entity) {
		c := obj.(*simulator.ClusterComputeResource)
		hosts := []string{}
		for _, h := range c.Host {
			hosts = append(hosts, h.Value)
		}
		dc.Clusters = append(dc.Clusters, cluster{e.Name, e.Self.Value, c.ResourcePool.Value, hosts})
	})
	each("HostSystem", func(dc *datacenter, e *mo.ManagedEntity, _ mo.Entity) {
		if cr, ok := simulator.Map.Get(*e.Parent).(*mo.ComputeResource); ok {
			dc.Hosts = append(dc.Hosts, host{e.Name, e.Self.Value, cr.Self.Value, cr.ResourcePool.Value})
		}
	})
	each("ResourcePool", func(dc *datacenter, e *mo.ManagedEntity, obj mo.Entity) {
		dc.ResourcePools = append(dc.ResourcePools, pool{e.Name, e.Self.Value, obj.(*simulator.ResourcePool).Owner.Value})
	})
	for _, kind := range []string{"Network", "DistributedVirtualPortgroup", "OpaqueNetwork"} {
		each(kind, func(dc *datacenter, e *mo.ManagedEntity, _ mo.Entity) {
			dc.Networks = append(dc.Networks, named{e.Name, e.Self.Value})
		})
	}
	each("VirtualMachine", func(dc *datacenter, e *mo.ManagedEntity, _ mo.Entity) {
		dc.VMs = append(dc.VMs, named{e.Name, e.Self.Value})
	})

	inv := struct {
		URL         string        `json:"url"`
		Datacenters []*datacenter `json:"datacenters"`
	}{URL: u, Datacenters: []*datacenter{}}
	for _, dc := range dcs {
		inv.Datacenters = append(inv.Datacenters, dc)
	}
	sort.Slice(inv.Datacenters, func(i, j int) bool { return inv.Datacenters[i].Name < inv.Datacenters[j].Name })
	b, _ := json.MarshalIndent(inv, "", "  ")
	return append(b, '\n')
}

// ---- /__fault ---------------------------------------------------------------

// rule makes matching requests wait DelayMS and then, if Status != 0, get Status+Body
// instead of reaching vcsim. Empty match fields match anything; Count 0 = unlimited.
type rule struct {
	Method       string `json:"method,omitempty"`
	PathPrefix   string `json:"path_prefix,omitempty"`
	BodyContains string `json:"body_contains,omitempty"`
	Status       int    `json:"status,omitempty"`
	Body         string `json:"body,omitempty"`
	DelayMS      int    `json:"delay_ms,omitempty"`
	Count        int    `json:"count,omitempty"`
	Hits         int    `json:"hits"`
}

type faults struct {
	mu    sync.Mutex
	rules []*rule
	next  http.Handler
}

func (f *faults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/__fault" {
		f.admin(w, r)
		return
	}
	f.mu.Lock()
	n := len(f.rules)
	f.mu.Unlock()
	var body []byte
	if n > 0 && r.Body != nil { // buffer the body for body_contains, outside the lock
		body, _ = io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	f.mu.Lock()
	var hit *rule
	for _, x := range f.rules {
		if (x.Count == 0 || x.Hits < x.Count) &&
			(x.Method == "" || strings.EqualFold(x.Method, r.Method)) &&
			strings.HasPrefix(r.URL.Path, x.PathPrefix) &&
			bytes.Contains(body, []byte(x.BodyContains)) {
			x.Hits++
			hit = x
			break
		}
	}
	var h rule
	if hit != nil {
		h = *hit
	}
	f.mu.Unlock()

	time.Sleep(time.Duration(h.DelayMS) * time.Millisecond)
	if h.Status == 0 {
		f.next.ServeHTTP(w, r)
		return
	}
	ct := "application/json"
	if strings.HasPrefix(strings.TrimSpace(h.Body), "<") {
		ct = "text/xml; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(h.Status)
	io.WriteString(w, h.Body)
}

func (f *faults) admin(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.Method {
	case http.MethodPost:
		x := new(rule)
		if err := json.NewDecoder(r.Body).Decode(x); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		x.Hits = 0
		f.rules = append(f.rules, x)
		json.NewEncoder(w).Encode(x)
	case http.MethodGet:
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.Encode(append([]*rule{}, f.rules...))
	case http.MethodDelete:
		f.rules = nil
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// ---- fix-ups ------------------------------------------------------------------

type fixer struct {
	next  http.Handler
	sdk   *url.URL   // /sdk URL with credentials, for the SOAP calls the fix-ups make
	libMu sync.Mutex // serializes library creates: name check + create (libraryCreate)
	ovfMu sync.Mutex // serializes OVF deploys: placement and name checks + deploy (ovfDeploy)
}

type obj = map[string]interface{}

// sub returns m[key] as an object, creating it if missing.
func sub(m obj, key string) obj {
	if o, ok := m[key].(obj); ok {
		return o
	}
	o := obj{}
	m[key] = o
	return o
}

func str(m obj, key string) string { s, _ := m[key].(string); return s }

func ref(kind, id string) types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: kind, Value: id}
}

func (f *fixer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const vmtx = "/rest/vcenter/vm-template/library-items"
	var fix func(http.ResponseWriter, *http.Request, obj) error
	switch p := r.URL.Path; {
	case r.Method == http.MethodDelete && strings.HasPrefix(p, "/rest/vcenter/vm/"):
		if f.vmDelete(w, r, strings.TrimPrefix(p, "/rest/vcenter/vm/")) {
			return
		}
	case r.Method != http.MethodPost:
	case p == vmtx:
		fix = f.vmtxCreate
	case strings.HasPrefix(p, vmtx+"/") && r.URL.Query().Get("action") == "deploy":
		fix = f.vmtxDeploy
	case p == "/rest/com/vmware/content/local-library" && r.URL.Query().Get("~action") == "":
		fix = f.libraryCreate
	case p == "/rest/com/vmware/content/subscribed-library" && r.URL.Query().Get("~action") == "":
		fix = f.subscribedCreate
	case p == "/rest/com/vmware/vcenter/ovf/library-item":
		fix = f.ovfCreate
	case strings.HasPrefix(p, "/rest/com/vmware/vcenter/ovf/library-item/id:") && r.URL.Query().Get("~action") == "deploy":
		fix = f.ovfDeploy
	}
	var body obj
	if fix != nil {
		raw, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(raw))
		if json.Unmarshal(raw, &body) != nil {
			fix = nil // not JSON: let vcsim answer
		}
	}
	if fix == nil {
		f.next.ServeHTTP(w, r)
		return
	}
	if err := fix(w, r, body); err != nil {
		log.Printf("fix-up %s: %v", r.URL.Path, err)
		w.WriteHeader(http.StatusInternalServerError)
		json.NewEncoder(w).Encode(obj{"type": "com.vmware.vapi.std.errors.error",
			"value": obj{"messages": []obj{{"default_message": "vcsim fix-up: " + err.Error()}}}})
	}
}

type recorder struct{ *httptest.ResponseRecorder }

func (rec recorder) copyTo(w http.ResponseWriter) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// value returns the string in a 200 {"value":"..."} reply, else "".
func (rec recorder) value() string {
	var v struct{ Value string }
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &v) != nil {
		return ""
	}
	return v.Value
}

// serve passes r, with body re-encoded, to vcsim and records the reply.
func (f *fixer) serve(r *http.Request, body obj) recorder {
	b, _ := json.Marshal(body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	rec := recorder{httptest.NewRecorder()}
	f.next.ServeHTTP(rec, r)
	return rec
}

// soap runs fn with a logged-in SOAP client (like vapi/simulator's own withClient).
func (f *fixer) soap(fn func(context.Context, *govmomi.Client) error) error {
	ctx := context.Background()
	c, err := govmomi.NewClient(ctx, f.sdk, true)
	if err != nil {
		return err
	}
	defer c.Logout(ctx)
	return fn(ctx, c)
}

// callError is call's error for a reply that is not 200.
type callError struct {
	method, target string
	code           int
	body           string
}

func (e *callError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.target, e.code, e.body)
}

// call sends one more request, with r's REST session, to vcsim and decodes the
// reply's value into out (if not nil). body is sent as is if []byte, else as JSON.
// A reply that is not 200 gives a *callError.
func (f *fixer) call(r *http.Request, method, target string, body, out interface{}) error {
	var b []byte
	switch v := body.(type) {
	case nil:
	case []byte:
		b = v
	default:
		b, _ = json.Marshal(v)
	}
	req := httptest.NewRequest(method, target, bytes.NewReader(b))
	req.Header = r.Header.Clone()
	req.Header.Del("Content-Length")
	rec := httptest.NewRecorder()
	f.next.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return &callError{method, target, rec.Code, rec.Body.String()}
	}
	if out == nil {
		return nil
	}
	var v struct{ Value json.RawMessage }
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		return err
	}
	return json.Unmarshal(v.Value, out)
}

func retrieve(ctx context.Context, c *govmomi.Client, r types.ManagedObjectReference, props []string, dst interface{}) error {
	return c.PropertyCollector().RetrieveOne(ctx, r, props, dst)
}

// subscribedCreate: vcsim finds the publisher by path.Base(subscription_url),
// so a real-vCenter style URL ending in /lib.json must lose that suffix.
func (f *fixer) subscribedCreate(w http.ResponseWriter, r *http.Request, body obj) error {
	si := sub(sub(body, "create_spec"), "subscription_info")
	if u := str(si, "subscription_url"); u != "" {
		si["subscription_url"] = strings.TrimSuffix(u, "/lib.json")
	}
	return f.libraryCreate(w, r, body)
}

// libraryCreate: vCenter refuses to create a library (local or subscribed) whose
// name another library already has, compared case-insensitively as its find does,
// with 400 already_exists; vcsim 0.24 creates the duplicate. Ask vcsim's find
// (case-insensitive too) and create only if it finds nothing. libMu makes
// "find + create" atomic, so concurrent creates of one name yield one library.
func (f *fixer) libraryCreate(w http.ResponseWriter, r *http.Request, body obj) error {
	name := str(sub(body, "create_spec"), "name")
	if name == "" { // find would match every library: let vcsim answer
		f.serve(r, body).copyTo(w)
		return nil
	}
	f.libMu.Lock()
	var ids []string
	err := f.call(r, http.MethodPost, "/rest/com/vmware/content/library?~action=find",
		obj{"spec": obj{"name": name}}, &ids)
	var ce *callError
	if errors.As(err, &ce) && ce.code == http.StatusUnauthorized {
		err = nil // no valid session: vcsim refuses the create below with 401
	}
	var rec recorder
	if err == nil && len(ids) == 0 {
		rec = f.serve(r, body)
	}
	f.libMu.Unlock()
	switch {
	case err != nil:
		return fmt.Errorf("find library %q: %v", name, err)
	case len(ids) > 0: // the REST (/rest) error shape, with vCenter's message
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.Encode(obj{"type": "com.vmware.vapi.std.errors.already_exists",
			"value": obj{"messages": []obj{{"args": []string{},
				"default_message": "A library with the name " + name + " already exists.",
				"id":              "com.vmware.vdcs.cls-main.duplicate_library_name"}}}})
	default:
		rec.copyTo(w)
	}
	return nil
}

// vmDelete: vCenter refuses to delete a running VM (400 not_allowed_in_current_state);
// vcsim 0.24 answers 200 and keeps the VM (its Destroy_Task fails on the powered-on VM
// and the REST handler ignores the error). Reports whether it answered.
func (f *fixer) vmDelete(w http.ResponseWriter, r *http.Request, id string) bool {
	var state types.VirtualMachinePowerState
	err := f.soap(func(ctx context.Context, c *govmomi.Client) error {
		var vm mo.VirtualMachine
		if err := retrieve(ctx, c, ref("VirtualMachine", id), []string{"runtime.powerState"}, &vm); err != nil {
			return err
		}
		state = vm.Runtime.PowerState
		return nil
	})
	if err != nil || state != types.VirtualMachinePowerStatePoweredOn {
		return false // unknown VM or off: let vcsim answer
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(obj{"type": "com.vmware.vapi.std.errors.not_allowed_in_current_state",
		"value": obj{"messages": []obj{{"args": []string{},
			"default_message": "The virtual machine " + id + " is powered on.",
			"id":              "com.vmware.api.vcenter.vm.powered_on"}}}})
	return true
}

// vmtxCreate: fill placement.folder/resource_pool from the source VM (vcsim panics
// without a folder) and PATCH spec.description onto the item (vcsim drops it).
func (f *fixer) vmtxCreate(w http.ResponseWriter, r *http.Request, body obj) error {
	spec := sub(body, "spec")
	p := sub(spec, "placement")
	if src := str(spec, "source_vm"); src != "" && (str(p, "folder") == "" || str(p, "resource_pool") == "") {
		err := f.soap(func(ctx context.Context, c *govmomi.Client) error {
			var vm mo.VirtualMachine
			if err := retrieve(ctx, c, ref("VirtualMachine", src), []string{"parent", "resourcePool"}, &vm); err != nil {
				return err
			}
			if str(p, "folder") == "" && vm.Parent != nil {
				p["folder"] = vm.Parent.Value
			}
			if str(p, "resource_pool") == "" && vm.ResourcePool != nil {
				p["resource_pool"] = vm.ResourcePool.Value
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	rec := f.serve(r, body)
	if id, desc := rec.value(), str(spec, "description"); id != "" && desc != "" {
		upd := obj{"update_spec": obj{"description": desc}}
		if err := f.call(r, http.MethodPatch, "/rest/com/vmware/content/library/item/id:"+id, upd, nil); err != nil {
			return err
		}
	}
	rec.copyTo(w)
	return nil
}

// vmtxDeploy: derive resource_pool from placement.cluster/host, then turn vcsim's
// result (still a template) into a VM and power it on if spec.powered_on.
func (f *fixer) vmtxDeploy(w http.ResponseWriter, r *http.Request, body obj) error {
	spec := sub(body, "spec")
	p := sub(spec, "placement")
	if str(p, "resource_pool") == "" && (str(p, "cluster") != "" || str(p, "host") != "") {
		err := f.soap(func(ctx context.Context, c *govmomi.Client) error {
			var cr mo.ComputeResource
			if id := str(p, "cluster"); id != "" {
				if err := retrieve(ctx, c, ref("ClusterComputeResource", id), []string{"resourcePool"}, &cr); err != nil {
					return err
				}
			} else if id := str(p, "host"); id != "" {
				var h mo.HostSystem
				if err := retrieve(ctx, c, ref("HostSystem", id), []string{"parent"}, &h); err != nil {
					return err
				}
				if err := retrieve(ctx, c, *h.Parent, []string{"resourcePool"}, &cr); err != nil {
					return err
				}
			}
			if cr.ResourcePool != nil {
				p["resource_pool"] = cr.ResourcePool.Value
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	rec := f.serve(r, body)
	if id, poolID := rec.value(), str(p, "resource_pool"); id != "" && poolID != "" {
		err := f.soap(func(ctx context.Context, c *govmomi.Client) error {
			hostID := str(p, "host")
			if hostID == "" { // the pool owner's first host
				var rp mo.ResourcePool
				var cr mo.ComputeResource
				if err := retrieve(ctx, c, ref("ResourcePool", poolID), []string{"owner"}, &rp); err != nil {
					return err
				}
				if err := retrieve(ctx, c, rp.Owner, []string{"host"}, &cr); err != nil {
					return err
				}
				if len(cr.Host) == 0 {
					return fmt.Errorf("%s has no host", rp.Owner.Value)
				}
				hostID = cr.Host[0].Value
			}
			vm := object.NewVirtualMachine(c.Client, ref("VirtualMachine", id))
			h := object.NewHostSystem(c.Client, ref("HostSystem", hostID))
			if err := vm.MarkAsVirtualMachine(ctx, *object.NewResourcePool(c.Client, ref("ResourcePool", poolID)), h); err != nil {
				return fmt.Errorf("MarkAsVirtualMachine %s: %v", id, err)
			}
			if on, _ := spec["powered_on"].(bool); on {
				task, err := vm.PowerOn(ctx)
				if err == nil {
					err = task.Wait(ctx)
				}
				if err != nil {
					return fmt.Errorf("power on %s: %v", id, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	rec.copyTo(w)
	return nil
}

// ovfDescriptor is a minimal OVF (no disks, no NICs) that vcsim's OVF deploy
// accepts: name, name, guest id, hardware version, CPUs (twice), memory MB (twice).
const ovfDescriptor = `<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References/>
  <VirtualSystem ovf:id="%[1]s">
    <Info>A virtual machine</Info>
    <Name>%[1]s</Name>
    <OperatingSystemSection ovf:id="1" vmw:osType="%[2]s"><Info>The operating system</Info></OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemType>%[3]s</vssd:VirtualSystemType></System>
      <Item><rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits><rasd:ElementName>%[4]d vCPU</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>%[4]d</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>%[5]dMB</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>%[5]d</rasd:VirtualQuantity></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`

// ovfCreate: vcsim makes an OVF item captured from a VM without any file, so its
// deploy fails. Like vCenter's export, give it a <name>.ovf with the VM's guest id,
// hardware version, numCPU and memoryMB (OVF deploy takes them from the descriptor),
// uploaded through an update session so that the item's file list names it (deploy
// opens the file list's .ovf). The item keeps create_spec.description (vcsim does).
func (f *fixer) ovfCreate(w http.ResponseWriter, r *http.Request, body obj) error {
	src, lib := sub(body, "source"), str(sub(body, "target"), "library_id")
	vmID, name := str(src, "id"), str(sub(body, "create_spec"), "name")
	if t := str(src, "type"); t != "" && t != "VirtualMachine" || vmID == "" || lib == "" {
		f.serve(r, body).copyTo(w)
		return nil
	}
	var vm mo.VirtualMachine
	props := []string{"config.guestId", "config.version", "config.hardware.numCPU", "config.hardware.memoryMB"}
	err := f.soap(func(ctx context.Context, c *govmomi.Client) error {
		return retrieve(ctx, c, ref("VirtualMachine", vmID), props, &vm)
	})
	if err == nil && vm.Config == nil {
		err = fmt.Errorf("%s has no config", vmID)
	}
	if err != nil {
		return err
	}
	rec := f.serve(r, body)
	var res struct {
		Value struct {
			Succeeded bool
			ID        string `json:"ovf_library_item_id"`
		}
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &res) != nil || !res.Value.Succeeded {
		rec.copyTo(w)
		return nil
	}
	var esc strings.Builder
	xml.EscapeText(&esc, []byte(name))
	cfg := vm.Config
	desc := []byte(fmt.Sprintf(ovfDescriptor, esc.String(), cfg.GuestId, cfg.Version, cfg.Hardware.NumCPU, cfg.Hardware.MemoryMB))
	item, file := res.Value.ID, strings.ReplaceAll(name, "/", "_")+".ovf"

	const items = "/rest/com/vmware/content/library/item"
	var session string
	var add struct {
		Upload struct{ URI string } `json:"upload_endpoint"`
	}
	var l struct {
		Storage []struct {
			DatastoreID string `json:"datastore_id"`
		} `json:"storage_backings"`
	}
	err = f.call(r, http.MethodPost, items+"/update-session", obj{"create_spec": obj{"library_item_id": item}}, &session)
	if err == nil {
		spec := obj{"file_spec": obj{"name": file, "source_type": "PUSH"}}
		err = f.call(r, http.MethodPost, items+"/updatesession/file/id:"+session+"?~action=add", spec, &add)
	}
	if err == nil {
		err = f.call(r, http.MethodPut, add.Upload.URI, desc, nil)
	}
	if err == nil {
		err = f.call(r, http.MethodPost, items+"/update-session/id:"+session+"?~action=complete", nil, nil)
	}
	// The upload lands in the directory of the first library vcsim finds the item in,
	// which may be a same-instance subscriber's (it shares the publisher's item map),
	// but deploy reads <datastore dir>/contentlib-<library id>/<item id>/ of the
	// library that is not SUBSCRIBED: write the file there as well.
	if err == nil {
		err = f.call(r, http.MethodGet, "/rest/com/vmware/content/library/id:"+lib, nil, &l)
	}
	if err == nil && len(l.Storage) > 0 {
		dir := filepath.Join(strings.SplitN(l.Storage[0].DatastoreID, "@", 2)[0], "contentlib-"+lib, item)
		if err = os.MkdirAll(dir, 0o750); err == nil {
			err = os.WriteFile(filepath.Join(dir, file), desc, 0o644)
		}
	}
	if err != nil {
		return fmt.Errorf("descriptor for item %s: %v", item, err)
	}
	rec.copyTo(w)
	return nil
}

// ovfDeploy: vCenter refuses an OVF deploy whose target folder, default datastore and
// resource pool are not all in one datacenter, and one whose VM name a VM in the
// target folder already has (VM names are unique per folder); vcsim 0.24 deploys
// both (into the given folder, whatever the pool's datacenter; a second VM of a
// name gets directory "<name> (0)"). Check both over SOAP and answer like a failed
// deploy, in vcsim's own shape (200, no "succeeded"), without deploying. ovfMu makes
// "check + deploy" atomic, so concurrent deploys of one name into one folder yield
// one VM. What the checks cannot judge (no session, unknown item or object, no pool
// or name) is left to vcsim, which answers as it always does.
func (f *fixer) ovfDeploy(w http.ResponseWriter, r *http.Request, body obj) error {
	target, _ := body["target"].(obj)
	spec, _ := body["deployment_spec"].(obj)
	poolID, folderID := str(target, "resource_pool_id"), str(target, "folder_id")
	dsID, name := str(spec, "default_datastore_id"), str(spec, "name")
	// The same item lookup (and session check) as deploy's: 401/404 stay vcsim's.
	if poolID == "" || f.call(r, http.MethodPost, r.URL.Path+"?~action=filter", obj{}, nil) != nil {
		f.next.ServeHTTP(w, r)
		return nil
	}
	f.ovfMu.Lock()
	defer f.ovfMu.Unlock()
	var refusal *vcenter.Error
	err := f.soap(func(ctx context.Context, c *govmomi.Client) error {
		type placed struct {
			what   string
			ref    types.ManagedObjectReference
			name   string
			dc     mo.Datacenter // zero if the object is in no datacenter
			inside bool
		}
		objs := []*placed{{what: "resource pool", ref: ref("ResourcePool", poolID)}}
		if folderID != "" {
			objs = append(objs, &placed{what: "folder", ref: ref("Folder", folderID)})
		}
		if dsID != "" {
			objs = append(objs, &placed{what: "datastore", ref: ref("Datastore", dsID)})
		}
		for _, o := range objs {
			// Walk parent up to the Datacenter; a resource pool from its owner
			// (cluster or standalone compute resource).
			var e mo.ManagedEntity
			if err := retrieve(ctx, c, o.ref, []string{"name", "parent"}, &e); err != nil {
				return err
			}
			o.name = e.Name
			next := e.Parent
			if o.ref.Type == "ResourcePool" {
				var rp mo.ResourcePool
				if err := retrieve(ctx, c, o.ref, []string{"owner"}, &rp); err != nil {
					return err
				}
				next = &rp.Owner
			}
			for next != nil && next.Type != "Datacenter" {
				e = mo.ManagedEntity{}
				if err := retrieve(ctx, c, *next, []string{"parent"}, &e); err != nil {
					return err
				}
				next = e.Parent
			}
			if next != nil {
				if err := retrieve(ctx, c, *next, []string{"name", "vmFolder"}, &o.dc); err != nil {
					return err
				}
				o.inside = true
			}
		}
		same := objs[0].inside
		for _, o := range objs[1:] {
			same = same && o.inside && o.dc.Self == objs[0].dc.Self
		}
		if !same {
			var where []string
			for _, o := range objs {
				in := "in no datacenter"
				if o.inside {
					in = fmt.Sprintf("in datacenter '%s' (%s)", o.dc.Name, o.dc.Self.Value)
				}
				where = append(where, fmt.Sprintf("%s '%s' (%s) is %s", o.what, o.name, o.ref.Value, in))
			}
			refusal = &vcenter.Error{Class: "com.vmware.vapi.std.errors.invalid_argument",
				Messages: []rest.LocalizableMessage{{DefaultMessage: "The target " +
					"resource pool, folder and datastore must be in one datacenter: " +
					strings.Join(where, ", ") + "."}}}
			return nil
		}
		if name == "" {
			return nil
		}
		// The VMs (and templates) directly in the target folder.
		folder := objs[0].dc.VmFolder
		if folderID != "" {
			folder = objs[1].ref
		}
		v, err := view.NewManager(c.Client).CreateContainerView(ctx, folder, []string{"VirtualMachine"}, false)
		if err != nil {
			return err
		}
		defer v.Destroy(ctx)
		var vms []mo.VirtualMachine
		if err := v.Retrieve(ctx, []string{"VirtualMachine"}, []string{"name"}, &vms); err != nil {
			return err
		}
		for _, vm := range vms {
			if vm.Name == name {
				refusal = &vcenter.Error{Class: "com.vmware.vapi.std.errors.already_exists",
					Messages: []rest.LocalizableMessage{{
						DefaultMessage: "The name '" + name + "' already exists.",
						ID:             "vim.fault.DuplicateName"}}}
				break
			}
		}
		return nil
	})
	if soap.IsSoapFault(err) {
		if _, ok := soap.ToSoapFault(err).VimFault().(types.ManagedObjectNotFound); ok {
			err = nil // unknown pool, folder or datastore: vcsim answers
		}
	}
	switch {
	case err != nil:
		return fmt.Errorf("check deploy target: %v", err)
	case refusal != nil: // written as vcsim writes a failed deploy
		vapi.OK(w, vcenter.Deployment{Error: &vcenter.DeploymentError{
			Errors: []vcenter.OVFError{{Category: "SERVER", Error: refusal}}}})
	default:
		rec := recorder{httptest.NewRecorder()}
		f.next.ServeHTTP(rec, r)
		rec.copyTo(w)
	}
	return nil
}
