//! The lab vCenter's SOAP endpoint (`/sdk`, vim25): the handful of calls golden makes.
//!
//! RetrieveServiceContent, Login/Logout, CreateContainerView/DestroyView,
//! RetrievePropertiesEx (over a container view or on single objects), ContinueRetrievePropertiesEx
//! (never needed: results are not paged) and CreateSnapshot_Task. Tasks finish at once, as in
//! vcsim, but are still read through `info.state`. A container view holds every object of its
//! types in this vCenter (a lab vCenter has one datacenter).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::xml::{self, Element, escape};
use super::{Task, VcenterSim, Vm};
use crate::lab::{LAB_PASSWORD, LAB_USER, SiteCtx, now_ms};

const ENVELOPE_OPEN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body>";
const ENVELOPE_CLOSE: &str = "</soapenv:Body></soapenv:Envelope>";

fn xml_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        format!("{ENVELOPE_OPEN}{body}{ENVELOPE_CLOSE}"),
    )
        .into_response()
}

fn reply(method: &str, returnval: &str) -> Response {
    xml_response(
        StatusCode::OK,
        format!("<{method}Response xmlns=\"urn:vim25\">{returnval}</{method}Response>"),
    )
}

/// A SOAP fault: HTTP 500, `faultstring`, and the fault type in `detail`.
fn fault(kind: &str, message: &str, detail: &str) -> Response {
    xml_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!(
            "<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>{}</faultstring><detail><{kind}Fault xmlns=\"urn:vim25\" xsi:type=\"{kind}\">{detail}</{kind}Fault></detail></soapenv:Fault>",
            escape(message)
        ),
    )
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

pub async fn sdk(State(ctx): State<SiteCtx>, headers: HeaderMap, body: Bytes) -> Response {
    let envelope = match xml::parse(&body) {
        Ok(e) => e,
        Err(e) => return fault("InvalidRequest", &format!("malformed request: {e}"), ""),
    };
    let Some(call) = envelope.child("Body").and_then(|b| b.children.first()) else {
        return fault("InvalidRequest", "the SOAP body is empty", "");
    };
    let mut lab = ctx.lock();
    let Some(site) = lab.sites.get_mut(&ctx.site) else { return fault("InvalidRequest", "no such site", "") };
    let vc = &mut site.vcenter;
    let method = call.name.as_str();
    if method == "RetrieveServiceContent" {
        return reply(method, &service_content(vc));
    }
    if method == "Login" {
        let user = call.text_of("userName").unwrap_or_default();
        let password = call.text_of("password").unwrap_or_default();
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
    let session = session_cookie(&headers).filter(|s| vc.sessions.contains(s));
    let Some(session) = session else {
        return fault(
            "NotAuthenticated",
            "The session is not authenticated.",
            "<object type=\"SessionManager\">SessionManager</object><privilegeId>System.View</privilegeId>",
        );
    };
    match method {
        "Logout" => {
            vc.sessions.remove(&session);
            reply(method, "")
        }
        "CreateContainerView" => {
            let types: Vec<String> = call.children_named("type").map(|t| t.text.trim().to_owned()).collect();
            let id = format!("session[{session}]{}", uuid::Uuid::new_v4());
            vc.views.insert(id.clone(), types);
            reply(method, &moref("ContainerView", &id))
        }
        "DestroyView" => {
            if let Some(id) = call.text_of("_this") {
                vc.views.remove(id);
            }
            reply(method, "")
        }
        "RetrievePropertiesEx" => match retrieve(vc, call) {
            Ok(objects) if objects.is_empty() => reply(method, ""),
            Ok(objects) => reply(method, &format!("<returnval>{objects}</returnval>")),
            Err((ty, id)) => not_found(&ty, &id),
        },
        "ContinueRetrievePropertiesEx" => {
            fault("InvalidArgument", "the token is not valid: results are never paged", "")
        }
        "CreateSnapshot_Task" => {
            let vm = call.text_of("_this").unwrap_or_default().to_owned();
            let name = call.text_of("name").unwrap_or_default().to_owned();
            let description = call.text_of("description").unwrap_or_default().to_owned();
            if !vc.vms.contains_key(&vm) {
                return not_found("VirtualMachine", &vm);
            }
            let snapshot = vc.add_snapshot(&vm, &name, &description, now_ms());
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
        other => fault("MethodNotFound", &format!("method {other} is not simulated by the lab"), ""),
    }
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

/// The objects (`(type, id)`) a RetrievePropertiesEx objectSet names.
fn objects_of(vc: &VcenterSim, object_set: &Element, types: &[String]) -> Vec<(String, String)> {
    let Some(obj) = object_set.child("obj") else { return Vec::new() };
    let ty = obj.attr("type").unwrap_or_default();
    let id = obj.text.trim();
    if ty == "ContainerView" {
        let Some(view_types) = vc.views.get(id) else { return Vec::new() };
        let mut out = Vec::new();
        for t in view_types.iter().filter(|t| types.contains(t)) {
            let ids: Vec<String> = match t.as_str() {
                "Datacenter" => vc.datacenters.keys().cloned().collect(),
                "Folder" => vc.folders.keys().cloned().collect(),
                "ClusterComputeResource" => vc.clusters.keys().cloned().collect(),
                "HostSystem" => vc.hosts.keys().cloned().collect(),
                "ResourcePool" => vc.resource_pools.keys().cloned().collect(),
                "Datastore" => vc.datastores.keys().cloned().collect(),
                "Network" => vc.networks.keys().cloned().collect(),
                "VirtualMachine" => vc.vms.keys().cloned().collect(),
                _ => Vec::new(),
            };
            out.extend(ids.into_iter().map(|i| (t.clone(), i)));
        }
        out
    } else {
        vec![(ty.to_owned(), id.to_owned())]
    }
}

/// The `<objects>` of a RetrievePropertiesEx, or the `(type, id)` of an object that is gone.
fn retrieve(vc: &VcenterSim, call: &Element) -> Result<String, (String, String)> {
    let mut out = String::new();
    for spec in call.children_named("specSet") {
        let prop_sets: Vec<(String, Vec<String>, bool)> = spec
            .children_named("propSet")
            .map(|p| {
                let ty = p.text_of("type").unwrap_or_default().to_owned();
                let paths = p.children_named("pathSet").map(|x| x.text.trim().to_owned()).collect();
                let all = p.text_of("all") == Some("true");
                (ty, paths, all)
            })
            .collect();
        let types: Vec<String> = prop_sets.iter().map(|p| p.0.clone()).collect();
        for object_set in spec.children_named("objectSet") {
            for (ty, id) in objects_of(vc, object_set, &types) {
                let Some((_, paths, all)) = prop_sets.iter().find(|p| p.0 == ty) else { continue };
                let Some(props) = properties(vc, &ty, &id) else { return Err((ty, id)) };
                out.push_str(&format!("<objects><obj type=\"{ty}\">{}</obj>", escape(&id)));
                for (name, val) in props {
                    // Unset properties are left out, as vCenter does.
                    if (*all || paths.iter().any(|p| p == &name)) && !val.is_empty() {
                        out.push_str(&format!("<propSet><name>{name}</name>{val}</propSet>"));
                    }
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

/// Every property the lab knows of an object, as `(path, <val>…</val>)`; `None` if it is gone.
fn properties(vc: &VcenterSim, ty: &str, id: &str) -> Option<Vec<(String, String)>> {
    let p = |n: &str, v: String| (n.to_owned(), v);
    Some(match ty {
        "Datacenter" => {
            let dc = vc.datacenters.get(id)?;
            let root =
                vc.folders.values().find(|f| f.parent.is_none()).map(|f| f.id.clone()).unwrap_or_default();
            vec![
                p("name", val_string(&dc.name)),
                p("parent", val_moref("Folder", &root)),
                p("vmFolder", val_moref("Folder", &dc.vm_folder)),
                p("hostFolder", val_moref("Folder", &dc.host_folder)),
                p("datastoreFolder", val_moref("Folder", &dc.datastore_folder)),
                p("networkFolder", val_moref("Folder", &dc.network_folder)),
            ]
        }
        "Folder" => {
            let f = vc.folders.get(id)?;
            let parent = f.parent.as_ref().map(|x| val_moref(type_of(vc, x), x)).unwrap_or_default();
            vec![p("name", val_string(&f.name)), p("parent", parent)]
        }
        "ClusterComputeResource" => {
            let c = vc.clusters.get(id)?;
            let parent = vc.datacenters.get(&c.datacenter).map(|d| d.host_folder.clone()).unwrap_or_default();
            vec![
                p("name", val_string(&c.name)),
                p("parent", val_moref("Folder", &parent)),
                p("resourcePool", val_moref("ResourcePool", &c.resource_pool)),
                p("host", val_morefs("HostSystem", &c.hosts)),
            ]
        }
        "HostSystem" => {
            let h = vc.hosts.get(id)?;
            vec![p("name", val_string(&h.name)), p("parent", val_moref("ClusterComputeResource", &h.cluster))]
        }
        "ResourcePool" => {
            let r = vc.resource_pools.get(id)?;
            vec![
                p("name", val_string(&r.name)),
                p("parent", val_moref(type_of(vc, &r.parent), &r.parent)),
                p("owner", val_moref("ClusterComputeResource", &r.cluster)),
            ]
        }
        "Datastore" => {
            let d = vc.datastores.get(id)?;
            let parent =
                vc.datacenters.get(&d.datacenter).map(|x| x.datastore_folder.clone()).unwrap_or_default();
            vec![p("name", val_string(&d.name)), p("parent", val_moref("Folder", &parent))]
        }
        "Network" => {
            let n = vc.networks.get(id)?;
            let parent =
                vc.datacenters.get(&n.datacenter).map(|x| x.network_folder.clone()).unwrap_or_default();
            vec![p("name", val_string(&n.name)), p("parent", val_moref("Folder", &parent))]
        }
        "VirtualMachine" => {
            let vm = vc.vms.get(id)?;
            vec![
                p("name", val_string(&vm.name)),
                p("parent", val_moref("Folder", &vm.folder)),
                p("config.template", format!("<val xsi:type=\"xsd:boolean\">{}</val>", vm.template)),
                p("config.guestId", val_string(&vm.guest_id)),
                // Unset (empty) annotations are left out, as vCenter leaves out unset properties.
                p(
                    "config.annotation",
                    if vm.annotation.is_empty() { String::new() } else { val_string(&vm.annotation) },
                ),
                p(
                    "runtime.powerState",
                    format!(
                        "<val xsi:type=\"VirtualMachinePowerState\">{}</val>",
                        if vm.powered_on { "poweredOn" } else { "poweredOff" }
                    ),
                ),
                p("runtime.host", val_moref("HostSystem", &vm.host)),
                p(
                    "resourcePool",
                    vm.resource_pool.as_ref().map(|r| val_moref("ResourcePool", r)).unwrap_or_default(),
                ),
                p("datastore", val_morefs("Datastore", std::slice::from_ref(&vm.datastore))),
                p("snapshot", snapshot_info(vm)),
            ]
        }
        "Task" => {
            let t = vc.tasks.get(id)?;
            let result = t.result.as_ref().map(|(ty, r)| val_moref(ty, r)).unwrap_or_default();
            let error = t
                .error
                .as_ref()
                .map(|e| format!("<val xsi:type=\"LocalizedMethodFault\"><fault xsi:type=\"SystemError\"><reason>{0}</reason></fault><localizedMessage>{0}</localizedMessage></val>", escape(e)))
                .unwrap_or_default();
            vec![
                p("info.state", format!("<val xsi:type=\"TaskInfoState\">{}</val>", t.state)),
                p("info.result", result),
                p("info.error", error),
                p("info.entity", val_moref(&t.entity_type, &t.entity)),
                p("info.descriptionId", val_string(&t.description_id)),
            ]
        }
        _ => return None,
    })
}

/// `VirtualMachineSnapshotInfo`: the current snapshot and the tree from its roots.
fn snapshot_info(vm: &Vm) -> String {
    if vm.snapshots.is_empty() {
        return String::new();
    }
    fn tree(vm: &Vm, parent: Option<&str>, tag: &str) -> String {
        vm.snapshots
            .iter()
            .filter(|s| s.parent.as_deref() == parent)
            .map(|s| {
                format!(
                    "<{tag}><snapshot type=\"VirtualMachineSnapshot\">{}</snapshot><vm type=\"VirtualMachine\">{}</vm><name>{}</name><description>{}</description><id>{}</id><createTime>{}</createTime><state>poweredOff</state><quiesced>false</quiesced>{}<replaySupported>false</replaySupported></{tag}>",
                    escape(&s.id),
                    escape(&vm.id),
                    escape(&s.name),
                    escape(&s.description),
                    s.num,
                    super::rest::iso(s.created_ms),
                    tree(vm, Some(&s.id), "childSnapshotList"),
                )
            })
            .collect()
    }
    let current = vm
        .current_snapshot
        .as_ref()
        .map(|c| format!("<currentSnapshot type=\"VirtualMachineSnapshot\">{}</currentSnapshot>", escape(c)))
        .unwrap_or_default();
    format!(
        "<val xsi:type=\"VirtualMachineSnapshotInfo\">{current}{}</val>",
        tree(vm, None, "rootSnapshotList")
    )
}
