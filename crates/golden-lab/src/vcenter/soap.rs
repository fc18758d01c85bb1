//! The lab vCenter's SOAP endpoint (`/sdk`, vim25): the handful of calls golden makes.
//!
//! RetrieveServiceContent, Login/Logout, RetrievePropertiesEx (on single objects, or walking the
//! inventory with traversal specs), ContinueRetrievePropertiesEx (never needed: results are not
//! paged) and CreateSnapshot_Task. Tasks finish at once, as in vcsim, but are still read through
//! `info.state`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::rest::{NewVm, place_vm};
use super::{Task, VcenterSim, Vm};
use crate::{LAB_PASSWORD, LAB_USER, SiteCtx, now_ms};
use golden_xml::{self as xml, Element, escape};

const ENVELOPE_OPEN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body>";
const ENVELOPE_CLOSE: &str = "</soapenv:Body></soapenv:Envelope>";

/// A SOAP envelope holding `parts`, written once into a buffer of its final size (an
/// inventory read is hundreds of kilobytes).
fn xml_response(status: StatusCode, parts: &[&str]) -> Response {
    let size = ENVELOPE_OPEN.len() + ENVELOPE_CLOSE.len() + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut body = String::with_capacity(size);
    body.push_str(ENVELOPE_OPEN);
    parts.iter().for_each(|p| body.push_str(p));
    body.push_str(ENVELOPE_CLOSE);
    (status, [(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

fn reply(method: &str, returnval: &str) -> Response {
    reply_of(method, &[returnval])
}

/// A `<{method}Response>` holding `parts`.
fn reply_of(method: &str, parts: &[&str]) -> Response {
    let (open, close) = (format!("<{method}Response xmlns=\"urn:vim25\">"), format!("</{method}Response>"));
    let all: Vec<&str> =
        std::iter::once(open.as_str()).chain(parts.iter().copied()).chain([close.as_str()]).collect();
    xml_response(StatusCode::OK, &all)
}

/// A SOAP fault: HTTP 500, `faultstring`, and the fault type in `detail`.
fn fault(kind: &str, message: &str, detail: &str) -> Response {
    let body = format!(
        "<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>{}</faultstring><detail><{kind}Fault xmlns=\"urn:vim25\" xsi:type=\"{kind}\">{detail}</{kind}Fault></detail></soapenv:Fault>",
        escape(message)
    );
    xml_response(StatusCode::INTERNAL_SERVER_ERROR, &[&body])
}

fn moref(ty: &str, id: &str) -> String {
    format!("<returnval type=\"{ty}\">{}</returnval>", escape(id))
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        c.split(';').find_map(|kv| {
            kv.trim().strip_prefix("vmware_soap_session=").map(|v| v.trim_matches('"').to_owned())
        })
    })
}

pub(super) async fn sdk(State(ctx): State<SiteCtx>, headers: HeaderMap, body: Bytes) -> Response {
    let envelope = match std::str::from_utf8(&body).map_err(|e| e.to_string()).and_then(xml::parse) {
        Ok(e) => e,
        Err(e) => return fault("InvalidRequest", &format!("malformed request: {e}"), ""),
    };
    let Some(call) = envelope.child("Body").and_then(|b| b.children.first()) else {
        return fault("InvalidRequest", "the SOAP body is empty", "");
    };
    let method = call.name.as_str();
    // Reads share the lab with other readers; the rest have it to themselves.
    if matches!(method, "RetrieveServiceContent" | "RetrievePropertiesEx") {
        let lab = ctx.read();
        let Some(vcenter) = lab.vcenters.get(&ctx.name) else {
            return fault("InvalidRequest", "no such vcenter", "");
        };
        return read(&vcenter.sim, &headers, method, call);
    }
    let mut lab = ctx.lock();
    let Some(vcenter) = lab.vcenters.get_mut(&ctx.name) else {
        return fault("InvalidRequest", "no such vcenter", "");
    };
    let vc = &mut vcenter.sim;
    if method == "Login" {
        let user = call.child_text("userName").unwrap_or_default();
        let password = call.child_text("password").unwrap_or_default();
        if user != LAB_USER || password != LAB_PASSWORD {
            return fault(
                "InvalidLogin",
                "Cannot complete login due to an incorrect user name or password.",
                "",
            );
        }
        let key = uuid::Uuid::new_v4().to_string();
        vc.sessions.insert(key.clone());
        let mut response = reply(
            method,
            &format!(
                "<returnval><key>{key}</key><userName>{}</userName><fullName>{}</fullName><loginTime>{now}</loginTime><lastActiveTime>{now}</lastActiveTime><locale>en</locale><messageLocale>en</messageLocale></returnval>",
                escape(user),
                escape(user),
                now = super::rest::iso(now_ms())
            ),
        );
        if let Ok(cookie) = format!("vmware_soap_session=\"{key}\"; Path=/; HttpOnly").parse() {
            response.headers_mut().insert(header::SET_COOKIE, cookie);
        }
        return response;
    }
    let Some(session) = session(vc, &headers) else { return not_authenticated() };
    match method {
        "Logout" => {
            vc.sessions.remove(&session);
            reply(method, "")
        }
        "ContinueRetrievePropertiesEx" => {
            fault("InvalidArgument", "the token is not valid: results are never paged", "")
        }
        "CreateSnapshot_Task" => {
            let vm = call.child_text("_this").unwrap_or_default().to_owned();
            let name = call.child_text("name").unwrap_or_default().to_owned();
            let description = call.child_text("description").unwrap_or_default().to_owned();
            if !vc.vms.contains_key(&vm) {
                return not_found("VirtualMachine", &vm);
            }
            let memory = call.child_text("memory") == Some("true");
            let snapshot = vc.add_snapshot(&vm, &name, &description, now_ms());
            if let (Some(id), true) = (&snapshot, memory) {
                let running = vc.vms.get(&vm).is_some_and(|v| v.powered_on);
                if let Some(s) =
                    vc.vms.get_mut(&vm).and_then(|v| v.snapshots.iter_mut().find(|s| &s.id == id))
                {
                    s.powered_on = running;
                }
            }
            let task = vc.moref("task-");
            vc.tasks.insert(
                task.clone(),
                Task {
                    id: task.clone(),
                    description_id: "VirtualMachine.createSnapshot".into(),
                    entity: vm,
                    entity_type: "VirtualMachine".into(),
                    state: if snapshot.is_some() { "success".into() } else { "error".into() },
                    result: snapshot.map(|s| ("VirtualMachineSnapshot".to_owned(), s)),
                    error: None,
                },
            );
            reply(method, &moref("Task", &task))
        }
        // A full clone, from the VM's current state or from one of its snapshots (what the
        // snapshot holds, whatever the VM did since), placed as a deployment is.
        "CloneVM_Task" => {
            let source = call.child_text("_this").unwrap_or_default().to_owned();
            let Some(vm) = vc.vms.get(&source).cloned() else { return not_found("VirtualMachine", &source) };
            let spec = call.child("spec");
            let location = spec.and_then(|s| s.child("location"));
            let text =
                |e: Option<&Element>, name: &str| e.and_then(|e| e.child_text(name)).map(str::to_owned);
            let disk = match text(spec, "snapshot") {
                Some(id) => match vm.snapshots.iter().find(|s| s.id == id) {
                    Some(snapshot) => snapshot.disk.clone(),
                    None => return not_found("VirtualMachineSnapshot", &id),
                },
                None => vm.disk.clone(),
            };
            let name = call.child_text("name").unwrap_or_default().to_owned();
            let powered_on = text(spec, "powerOn").as_deref() == Some("true");
            let new = NewVm { name: &name, annotation: "", guest: &vm.guest_id, powered_on, disk: &disk };
            let pool = text(location, "pool").or(vm.resource_pool.clone());
            let folder = call.child_text("folder").map(str::to_owned);
            let datastore = text(location, "datastore").or(Some(vm.datastore.clone()));
            let placed = place_vm(vc, &new, pool.as_deref(), folder.as_deref(), datastore.as_deref());
            let task = vc.moref("task-");
            let (state, result, error) = match placed {
                Ok(id) => ("success", Some(("VirtualMachine".to_owned(), id)), None),
                Err(e) => ("error", None, Some(e)),
            };
            vc.tasks.insert(
                task.clone(),
                Task {
                    id: task.clone(),
                    description_id: "VirtualMachine.clone".into(),
                    entity: source,
                    entity_type: "VirtualMachine".into(),
                    state: state.into(),
                    result,
                    error,
                },
            );
            reply(method, &moref("Task", &task))
        }
        // A guest shutdown is asked of the guest and the call returns at once; the lab's
        // guests always comply. Both refuse a VM that is off, as vCenter does.
        "ShutdownGuest" | "PowerOffVM_Task" => {
            let id = call.child_text("_this").unwrap_or_default().to_owned();
            let Some(vm) = vc.vms.get_mut(&id) else { return not_found("VirtualMachine", &id) };
            if !vm.powered_on {
                let detail =
                    "<requestedState>poweredOn</requestedState><existingState>poweredOff</existingState>";
                return fault(
                    "InvalidPowerState",
                    "the operation is not allowed in the current power state",
                    detail,
                );
            }
            vm.powered_on = false;
            if method == "ShutdownGuest" {
                return reply(method, "");
            }
            let task = vc.moref("task-");
            vc.tasks.insert(
                task.clone(),
                Task {
                    id: task.clone(),
                    description_id: "VirtualMachine.powerOff".into(),
                    entity: id,
                    entity_type: "VirtualMachine".into(),
                    state: "success".into(),
                    result: None,
                    error: None,
                },
            );
            reply(method, &moref("Task", &task))
        }
        other => fault("MethodNotFound", &format!("method {other} is not simulated by the lab"), ""),
    }
}

/// The calls that only read: the service content, and property reads in a session.
fn read(vc: &VcenterSim, headers: &HeaderMap, method: &str, call: &Element) -> Response {
    if method == "RetrieveServiceContent" {
        return reply(method, &service_content(vc));
    }
    if session(vc, headers).is_none() {
        return not_authenticated();
    }
    match retrieve(vc, call) {
        Ok(objects) if objects.is_empty() => reply(method, ""),
        Ok(objects) => reply_of(method, &["<returnval>", &objects, "</returnval>"]),
        Err(Refused::Gone(ty, id)) => not_found(&ty, &id),
        Err(Refused::UnknownSpec(name)) => fault(
            "InvalidArgument",
            &format!("A specified parameter was not correct: undefined traversal spec `{name}`"),
            "<invalidProperty>selectSet</invalidProperty>",
        ),
    }
}

/// The live SOAP session the request's cookie names.
fn session(vc: &VcenterSim, headers: &HeaderMap) -> Option<String> {
    session_cookie(headers).filter(|s| vc.sessions.contains(s))
}

fn not_authenticated() -> Response {
    fault(
        "NotAuthenticated",
        "The session is not authenticated.",
        "<object type=\"SessionManager\">SessionManager</object><privilegeId>System.View</privilegeId>",
    )
}

fn not_found(ty: &str, id: &str) -> Response {
    fault(
        "ManagedObjectNotFound",
        &format!("The object '{ty}:{id}' has already been deleted or has not been completely created"),
        &format!("<obj type=\"{ty}\">{}</obj>", escape(id)),
    )
}

fn service_content(vc: &VcenterSim) -> String {
    let root = vc.folders.values().find(|f| f.parent.is_none()).map(|f| f.id.clone()).unwrap_or_default();
    format!(
        "<returnval><rootFolder type=\"Folder\">{root}</rootFolder><propertyCollector type=\"PropertyCollector\">propertyCollector</propertyCollector><viewManager type=\"ViewManager\">ViewManager</viewManager><about><name>VMware vCenter Server</name><fullName>VMware vCenter Server 8.0.2 build-lab (golden lab)</fullName><vendor>VMware, Inc.</vendor><version>8.0.2</version><build>lab</build><osType>linux-x64</osType><apiType>VirtualCenter</apiType><apiVersion>8.0.2.0</apiVersion><instanceUuid>{}</instanceUuid></about><sessionManager type=\"SessionManager\">SessionManager</sessionManager><taskManager type=\"TaskManager\">TaskManager</taskManager></returnval>",
        escape(&vc.instance_uuid)
    )
}

/// Why a RetrievePropertiesEx is refused.
#[derive(Debug)]
enum Refused {
    /// An object it names is gone: `(type, id)`.
    Gone(String, String),
    /// A selection spec names a traversal spec the objectSet does not define.
    UnknownSpec(String),
}

/// The objects (`(type, id)`) a RetrievePropertiesEx objectSet names: its `obj` (unless
/// `skip`), and every object its traversal specs reach from there. A traversal spec applies to
/// objects of its type (or a subtype), follows its `path` to more objects, reports them unless
/// it skips them, and goes on with its own `selectSet`; a selection spec names a traversal spec
/// defined anywhere in the objectSet. Each object is reported once.
fn objects_of(vc: &VcenterSim, object_set: &Element) -> Result<Vec<(String, String)>, Refused> {
    fn define<'a>(selects: &'a Element, named: &mut BTreeMap<&'a str, &'a Element>) {
        for spec in selects.children("selectSet") {
            if spec.child("path").is_some() {
                named.insert(spec.child_text("name").unwrap_or_default(), spec);
            }
            define(spec, named);
        }
    }
    struct Walk<'a> {
        vc: &'a VcenterSim,
        named: BTreeMap<&'a str, &'a Element>,
        walked: BTreeSet<(String, &'a str)>,
        seen: BTreeSet<(String, String)>,
        out: Vec<(String, String)>,
    }
    impl<'a> Walk<'a> {
        fn from(&mut self, ty: &str, id: &str, selects: &'a Element) -> Result<(), Refused> {
            for select in selects.children("selectSet") {
                let spec = if select.child("path").is_some() {
                    select
                } else {
                    let name = select.child_text("name").unwrap_or_default();
                    *self.named.get(name).ok_or_else(|| Refused::UnknownSpec(name.to_owned()))?
                };
                if !is_a(ty, spec.child_text("type").unwrap_or_default()) {
                    continue;
                }
                let path = spec.child_text("path").unwrap_or_default();
                // A spec is followed once from each object, whatever the path to it.
                if !self.walked.insert((format!("{ty}:{id}"), path)) {
                    continue;
                }
                let skip = spec.child_text("skip") == Some("true");
                for (child_ty, child_id) in children(self.vc, ty, id, path) {
                    if !skip && self.seen.insert((child_ty.to_owned(), child_id.clone())) {
                        self.out.push((child_ty.to_owned(), child_id.clone()));
                    }
                    self.from(child_ty, &child_id, spec)?;
                }
            }
            Ok(())
        }
    }
    let Some(obj) = object_set.child("obj") else { return Ok(Vec::new()) };
    let (ty, id) = (obj.attr("type").unwrap_or_default(), obj.text.trim());
    let mut named = BTreeMap::new();
    define(object_set, &mut named);
    let mut walk = Walk { vc, named, walked: BTreeSet::new(), seen: BTreeSet::new(), out: Vec::new() };
    if object_set.child_text("skip") != Some("true") {
        walk.seen.insert((ty.to_owned(), id.to_owned()));
        walk.out.push((ty.to_owned(), id.to_owned()));
    }
    walk.from(ty, id, object_set)?;
    Ok(walk.out)
}

/// Whether an object of type `ty` is a `of` (the subtypes the lab has).
fn is_a(ty: &str, of: &str) -> bool {
    ty == of || of == "ManagedEntity" || (of == "ComputeResource" && ty == "ClusterComputeResource")
}

/// The objects the property `path` of `(ty, id)` refers to, for traversal specs.
fn children(vc: &VcenterSim, ty: &str, id: &str, path: &str) -> Vec<(&'static str, String)> {
    let ids = |kind: &'static str, ids: Vec<&String>| ids.into_iter().map(|i| (kind, i.clone())).collect();
    match (ty, path) {
        ("Folder", "childEntity") => {
            let root = vc.folders.get(id).is_some_and(|f| f.parent.is_none());
            let mut out: Vec<(&'static str, String)> = ids(
                "Folder",
                vc.folders.values().filter(|f| f.parent.as_deref() == Some(id)).map(|f| &f.id).collect(),
            );
            if root {
                out.extend(vc.datacenters.keys().map(|d| ("Datacenter", d.clone())));
            }
            for dc in vc.datacenters.values() {
                if dc.host_folder == id {
                    out.extend(
                        vc.clusters
                            .values()
                            .filter(|c| c.datacenter == dc.id)
                            .map(|c| ("ClusterComputeResource", c.id.clone())),
                    );
                }
                if dc.datastore_folder == id {
                    out.extend(
                        vc.datastores
                            .values()
                            .filter(|d| d.datacenter == dc.id)
                            .map(|d| ("Datastore", d.id.clone())),
                    );
                }
                if dc.network_folder == id {
                    out.extend(
                        vc.networks
                            .values()
                            .filter(|n| n.datacenter == dc.id)
                            .map(|n| ("Network", n.id.clone())),
                    );
                }
            }
            out.extend(vc.vms.values().filter(|v| v.folder == id).map(|v| ("VirtualMachine", v.id.clone())));
            out
        }
        ("Datacenter", _) => {
            let Some(dc) = vc.datacenters.get(id) else { return Vec::new() };
            let folder = match path {
                "vmFolder" => &dc.vm_folder,
                "hostFolder" => &dc.host_folder,
                "datastoreFolder" => &dc.datastore_folder,
                "networkFolder" => &dc.network_folder,
                _ => return Vec::new(),
            };
            vec![("Folder", folder.clone())]
        }
        ("ClusterComputeResource", "resourcePool") => {
            vc.clusters.get(id).map(|c| vec![("ResourcePool", c.resource_pool.clone())]).unwrap_or_default()
        }
        ("ClusterComputeResource", "host") => {
            vc.clusters.get(id).map(|c| ids("HostSystem", c.hosts.iter().collect())).unwrap_or_default()
        }
        ("ResourcePool", "resourcePool") => ids(
            "ResourcePool",
            vc.resource_pools.values().filter(|r| r.parent == id).map(|r| &r.id).collect(),
        ),
        _ => Vec::new(),
    }
}

/// The `<objects>` of a RetrievePropertiesEx.
fn retrieve(vc: &VcenterSim, call: &Element) -> Result<String, Refused> {
    let mut out = String::new();
    for spec in call.children("specSet") {
        let prop_sets: Vec<(String, Vec<String>, bool)> = spec
            .children("propSet")
            .map(|p| {
                let ty = p.child_text("type").unwrap_or_default().to_owned();
                let paths = p.children("pathSet").map(|x| x.text.trim().to_owned()).collect();
                let all = p.child_text("all") == Some("true");
                (ty, paths, all)
            })
            .collect();
        for object_set in spec.children("objectSet") {
            for (ty, id) in objects_of(vc, object_set)? {
                let Some((_, paths, all)) = prop_sets.iter().find(|p| p.0 == ty) else { continue };
                let want = |path: &str| *all || paths.iter().any(|p| p == path);
                let Some(props) = properties(vc, &ty, &id, &want) else { return Err(Refused::Gone(ty, id)) };
                let _ = write!(out, "<objects><obj type=\"{ty}\">{}</obj>", escape(&id));
                for (name, val) in props {
                    let _ = write!(out, "<propSet><name>{name}</name>{val}</propSet>");
                }
                out.push_str("</objects>");
            }
        }
    }
    Ok(out)
}

fn val_string(text: &str) -> String {
    format!("<val xsi:type=\"xsd:string\">{}</val>", escape(text))
}

fn val_moref(ty: &str, id: &str) -> String {
    format!("<val xsi:type=\"ManagedObjectReference\" type=\"{ty}\">{}</val>", escape(id))
}

fn val_morefs(ty: &str, ids: &[String]) -> String {
    let inner: String = ids.iter().map(|i| format!("<ManagedObjectReference type=\"{ty}\" xsi:type=\"ManagedObjectReference\">{}</ManagedObjectReference>", escape(i))).collect();
    format!("<val xsi:type=\"ArrayOfManagedObjectReference\">{inner}</val>")
}

/// The type of the object `id` names, for `parent` references.
fn type_of(vc: &VcenterSim, id: &str) -> &'static str {
    if vc.datacenters.contains_key(id) {
        "Datacenter"
    } else if vc.clusters.contains_key(id) {
        "ClusterComputeResource"
    } else if vc.resource_pools.contains_key(id) {
        "ResourcePool"
    } else {
        "Folder"
    }
}

/// The properties of one object a property set asks for, as `(path, <val>…</val>)`.
struct Props<'w> {
    want: &'w dyn Fn(&str) -> bool,
    out: Vec<(&'static str, String)>,
}

impl Props<'_> {
    /// Adds `path` if it is asked for, its value made only then; unset (empty) values are left
    /// out, as vCenter leaves out unset properties.
    fn put(&mut self, path: &'static str, value: impl FnOnce() -> String) {
        if (self.want)(path) {
            let value = value();
            if !value.is_empty() {
                self.out.push((path, value));
            }
        }
    }
}

/// The properties `want` asks for of an object; `None` if it is gone.
fn properties(
    vc: &VcenterSim,
    ty: &str,
    id: &str,
    want: &dyn Fn(&str) -> bool,
) -> Option<Vec<(&'static str, String)>> {
    let mut p = Props { want, out: Vec::new() };
    match ty {
        "Datacenter" => {
            let dc = vc.datacenters.get(id)?;
            p.put("name", || val_string(&dc.name));
            p.put("parent", || {
                let root = vc.folders.values().find(|f| f.parent.is_none()).map(|f| f.id.as_str());
                val_moref("Folder", root.unwrap_or_default())
            });
            p.put("vmFolder", || val_moref("Folder", &dc.vm_folder));
            p.put("hostFolder", || val_moref("Folder", &dc.host_folder));
            p.put("datastoreFolder", || val_moref("Folder", &dc.datastore_folder));
            p.put("networkFolder", || val_moref("Folder", &dc.network_folder));
        }
        "Folder" => {
            let f = vc.folders.get(id)?;
            p.put("name", || val_string(&f.name));
            p.put("parent", || f.parent.as_ref().map(|x| val_moref(type_of(vc, x), x)).unwrap_or_default());
        }
        "ClusterComputeResource" => {
            let c = vc.clusters.get(id)?;
            p.put("name", || val_string(&c.name));
            p.put("parent", || {
                let folder = vc.datacenters.get(&c.datacenter).map(|d| d.host_folder.as_str());
                val_moref("Folder", folder.unwrap_or_default())
            });
            p.put("resourcePool", || val_moref("ResourcePool", &c.resource_pool));
            p.put("host", || val_morefs("HostSystem", &c.hosts));
        }
        "HostSystem" => {
            let h = vc.hosts.get(id)?;
            p.put("name", || val_string(&h.name));
            p.put("parent", || val_moref("ClusterComputeResource", &h.cluster));
        }
        "ResourcePool" => {
            let r = vc.resource_pools.get(id)?;
            p.put("name", || val_string(&r.name));
            p.put("parent", || val_moref(type_of(vc, &r.parent), &r.parent));
            p.put("owner", || val_moref("ClusterComputeResource", &r.cluster));
        }
        "Datastore" => {
            let d = vc.datastores.get(id)?;
            p.put("name", || val_string(&d.name));
            p.put("parent", || {
                let folder = vc.datacenters.get(&d.datacenter).map(|x| x.datastore_folder.as_str());
                val_moref("Folder", folder.unwrap_or_default())
            });
        }
        "Network" => {
            let n = vc.networks.get(id)?;
            p.put("name", || val_string(&n.name));
            p.put("parent", || {
                let folder = vc.datacenters.get(&n.datacenter).map(|x| x.network_folder.as_str());
                val_moref("Folder", folder.unwrap_or_default())
            });
        }
        "VirtualMachine" => {
            let vm = vc.vms.get(id)?;
            p.put("name", || val_string(&vm.name));
            p.put("parent", || val_moref("Folder", &vm.folder));
            p.put("config.template", || format!("<val xsi:type=\"xsd:boolean\">{}</val>", vm.template));
            p.put("config.guestId", || val_string(&vm.guest_id));
            p.put("config.annotation", || {
                if vm.annotation.is_empty() { String::new() } else { val_string(&vm.annotation) }
            });
            p.put("runtime.powerState", || {
                let state = if vm.powered_on { "poweredOn" } else { "poweredOff" };
                format!("<val xsi:type=\"VirtualMachinePowerState\">{state}</val>")
            });
            p.put("runtime.host", || val_moref("HostSystem", &vm.host));
            p.put("resourcePool", || {
                vm.resource_pool.as_ref().map(|r| val_moref("ResourcePool", r)).unwrap_or_default()
            });
            p.put("datastore", || val_morefs("Datastore", std::slice::from_ref(&vm.datastore)));
            p.put("snapshot", || snapshot_info(vm));
        }
        "Task" => {
            let t = vc.tasks.get(id)?;
            p.put("info.state", || format!("<val xsi:type=\"TaskInfoState\">{}</val>", t.state));
            p.put("info.result", || t.result.as_ref().map(|(ty, r)| val_moref(ty, r)).unwrap_or_default());
            p.put("info.error", || {
                t.error
                    .as_ref()
                    .map(|e| format!("<val xsi:type=\"LocalizedMethodFault\"><fault xsi:type=\"SystemError\"><reason>{0}</reason></fault><localizedMessage>{0}</localizedMessage></val>", escape(e)))
                    .unwrap_or_default()
            });
            p.put("info.entity", || val_moref(&t.entity_type, &t.entity));
            p.put("info.descriptionId", || val_string(&t.description_id));
        }
        _ => return None,
    }
    Some(p.out)
}

/// `VirtualMachineSnapshotInfo`: the current snapshot and the tree from its roots.
fn snapshot_info(vm: &Vm) -> String {
    if vm.snapshots.is_empty() {
        return String::new();
    }
    fn tree(out: &mut String, vm: &Vm, parent: Option<&str>, tag: &str) {
        for s in vm.snapshots.iter().filter(|s| s.parent.as_deref() == parent) {
            let _ = write!(
                out,
                "<{tag}><snapshot type=\"VirtualMachineSnapshot\">{}</snapshot><vm type=\"VirtualMachine\">{}</vm><name>{}</name><description>{}</description><id>{}</id><createTime>{}</createTime><state>poweredOff</state><quiesced>false</quiesced>",
                escape(&s.id),
                escape(&vm.id),
                escape(&s.name),
                escape(&s.description),
                s.num,
                super::rest::iso(s.created_ms),
            );
            tree(out, vm, Some(&s.id), "childSnapshotList");
            let _ = write!(out, "<replaySupported>false</replaySupported></{tag}>");
        }
    }
    let mut out = String::from("<val xsi:type=\"VirtualMachineSnapshotInfo\">");
    if let Some(c) = &vm.current_snapshot {
        let _ =
            write!(out, "<currentSnapshot type=\"VirtualMachineSnapshot\">{}</currentSnapshot>", escape(c));
    }
    tree(&mut out, vm, None, "rootSnapshotList");
    out.push_str("</val>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vcenter::Placement;

    fn lab_vcenter() -> VcenterSim {
        let place = Placement {
            datacenter: "DC",
            cluster: "C",
            resource_pool: Some("VDI"),
            folder: "golden",
            datastore: "ds",
        };
        let mut vc = VcenterSim::new("uuid");
        let dc = vc.add_datacenter(&place);
        let folder = vc.vm_folder_named(&dc, "golden").map(|f| f.id.clone());
        vc.add_vm("base", &dc, folder.as_deref()).expect("vm");
        vc
    }

    fn object_set(xml: &str) -> Element {
        xml::parse(xml).expect("xml")
    }

    fn kinds(objects: &[(String, String)]) -> Vec<&str> {
        let mut kinds: Vec<&str> = objects.iter().map(|(ty, _)| ty.as_str()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        kinds
    }

    #[test]
    fn traversal_specs_walk_the_inventory_once_per_object() {
        let vc = lab_vcenter();
        let root = vc.folders.values().find(|f| f.parent.is_none()).map(|f| f.id.clone()).expect("root");
        // The walk golden's client sends for its inventory read: down from the root folder
        // through folders, datacenters' folders and compute resources' pools.
        let spec = |name: &str, kind: &str, path: &str, then: &[&str]| {
            let then: String = then
                .iter()
                .map(|n| format!("<vim25:selectSet><vim25:name>{n}</vim25:name></vim25:selectSet>"))
                .collect();
            format!(
                "<vim25:selectSet xsi:type=\"vim25:TraversalSpec\"><vim25:name>{name}</vim25:name><vim25:type>{kind}</vim25:type><vim25:path>{path}</vim25:path><vim25:skip>false</vim25:skip>{then}</vim25:selectSet>"
            )
        };
        let follow = ["folder", "vmFolder", "hostFolder", "datastoreFolder", "computePool"];
        let set = format!(
            "<vim25:objectSet xmlns:vim25=\"urn:vim25\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><vim25:obj type=\"Folder\">{root}</vim25:obj><vim25:skip>true</vim25:skip>{}{}{}{}{}{}</vim25:objectSet>",
            spec("folder", "Folder", "childEntity", &follow),
            spec("vmFolder", "Datacenter", "vmFolder", &["folder"]),
            spec("hostFolder", "Datacenter", "hostFolder", &["folder"]),
            spec("datastoreFolder", "Datacenter", "datastoreFolder", &["folder"]),
            spec("computePool", "ComputeResource", "resourcePool", &["resourcePool"]),
            spec("resourcePool", "ResourcePool", "resourcePool", &["resourcePool"]),
        );
        let objects = objects_of(&vc, &object_set(&set)).expect("walks");
        assert_eq!(
            kinds(&objects),
            ["ClusterComputeResource", "Datacenter", "Datastore", "Folder", "ResourcePool", "VirtualMachine"]
        );
        // `skip` on the objectSet leaves the root out; every object comes once.
        assert!(!objects.iter().any(|(_, id)| *id == root));
        let mut ids: Vec<&String> = objects.iter().map(|(_, id)| id).collect();
        ids.sort_unstable();
        let count = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), count);
        // Resource pools come through the cluster (its root pool) and the pools inside it.
        assert_eq!(objects.iter().filter(|(ty, _)| ty == "ResourcePool").count(), vc.resource_pools.len());
        assert!(objects.iter().any(|(ty, id)| ty == "VirtualMachine" && vc.vms[id].name == "base"));
    }

    #[test]
    fn a_selection_spec_must_name_a_defined_traversal_spec() {
        let vc = lab_vcenter();
        let root = vc.folders.values().find(|f| f.parent.is_none()).map(|f| f.id.clone()).expect("root");
        let set = format!(
            "<objectSet><obj type=\"Folder\">{root}</obj><selectSet><name>nowhere</name></selectSet></objectSet>"
        );
        assert!(
            matches!(objects_of(&vc, &object_set(&set)), Err(Refused::UnknownSpec(name)) if name == "nowhere")
        );
        // A spec of another type does not apply: only the root itself is reported.
        let set = format!(
            "<objectSet><obj type=\"Folder\">{root}</obj><selectSet><name>dc</name><type>Datacenter</type><path>vmFolder</path></selectSet></objectSet>"
        );
        assert_eq!(objects_of(&vc, &object_set(&set)).expect("walks"), [("Folder".to_owned(), root)]);
    }
}
