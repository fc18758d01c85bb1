//! OVF and VM-template items and the VMs deployed from them: capture, deploy and delete
//! (`/rest/com/vmware/vcenter/ovf/library-item`, `/rest/vcenter/vm-template/library-items`,
//! `/rest/vcenter/vm`).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{
    Q, VapiId, action, api_error, body_json, empty, in_session, invalid, not_found, s, value, vc,
    with_session,
};
use crate::vcenter::content::{File, Item, LibraryKind};
use crate::vcenter::{VcenterSim, Vm};
use crate::{SiteCtx, Timings, now_ms};

/// The OVF descriptor the lab writes when it captures a VM (and reads back on deploy).
fn ovf_for(vm: &Vm) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\" xmlns:vmw=\"http://www.vmware.com/schema/ovf\">\n  <References><File ovf:href=\"disk-0.vmdk\" ovf:id=\"file1\"/></References>\n  <VirtualSystem ovf:id=\"{name}\"><Info>A virtual machine</Info><Name>{name}</Name>\n    <OperatingSystemSection ovf:id=\"1\" vmw:osType=\"{guest}\"><Info>os</Info></OperatingSystemSection>\n  </VirtualSystem>\n</Envelope>\n",
        name = golden_xml::escape(&vm.name),
        guest = golden_xml::escape(&vm.guest_id),
    )
}

/// What a long operation does when its time has passed, under the lab's lock: its answer.
type Finish = Box<dyn FnOnce(&mut VcenterSim) -> Value + Send>;

/// How a long operation began.
enum Begun {
    /// The work to finish after `delay_ms`.
    Started { finish: Finish, delay_ms: u64 },
    /// A request repeating a `client_token` already seen.
    Repeat(String),
}

/// Runs a long operation (an OVF capture or deploy) as vCenter does: begun under the lock by
/// `start` (which may refuse), finished after its time on a task of its own, so that it
/// completes even when the client hangs up. A request repeating a `client_token` makes
/// nothing: it waits for the first request's answer and gets that.
async fn long_operation(
    ctx: SiteCtx,
    headers: &HeaderMap,
    token: Option<String>,
    delay_of: fn(&Timings) -> u64,
    start: impl FnOnce(&mut VcenterSim) -> Result<Finish, Box<Response>>,
) -> Response {
    let begun = in_session(&ctx, headers, |lab, site| -> Result<Begun, Box<Response>> {
        let delay_ms = delay_of(&lab.timings);
        let vc = vc(lab, site);
        if let Some(t) = token.as_ref().filter(|t| vc.content.client_tokens.contains_key(*t)) {
            return Ok(Begun::Repeat(t.clone()));
        }
        let finish = start(vc)?;
        if let Some(t) = &token {
            vc.content.client_tokens.insert(t.clone(), None);
        }
        Ok(Begun::Started { finish, delay_ms })
    });
    let begun = match begun {
        Ok(Ok(begun)) => begun,
        Ok(Err(refused)) | Err(refused) => return *refused,
    };
    match begun {
        Begun::Started { finish, delay_ms } => {
            let task = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                let mut lab = ctx.lock();
                let vcenter = lab.vcenters.get_mut(&ctx.name)?;
                let answer = finish(&mut vcenter.sim);
                if let Some(t) = token {
                    vcenter.sim.content.client_tokens.insert(t, Some(answer.clone()));
                }
                Some(answer)
            });
            match task.await {
                Ok(Some(answer)) => value(answer),
                _ => api_error(StatusCode::INTERNAL_SERVER_ERROR, "error", "the vCenter went away"),
            }
        }
        Begun::Repeat(token) => loop {
            {
                let lab = ctx.read();
                let answer =
                    lab.vcenters.get(&ctx.name).and_then(|v| v.sim.content.client_tokens.get(&token));
                if let Some(Some(answer)) = answer {
                    return value(answer.clone());
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        },
    }
}

/// `POST /rest/com/vmware/vcenter/ovf/library-item` from a VM: the item is listed at once
/// (with golden's description) and gets its files when the export is done.
pub(in crate::vcenter) async fn ovf_create(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    let token = s(&body, &["client_token"]).map(str::to_owned);
    long_operation(ctx, &headers, token, |t| t.capture_ms, |vc| {
        let (Some(vm), Some(library), Some(name)) = (
            s(&body, &["source", "id"]),
            s(&body, &["target", "library_id"]),
            s(&body, &["create_spec", "name"]),
        ) else {
            return Err(Box::new(invalid("source.id, target.library_id and create_spec.name are required")));
        };
        let Some(vm) = vc.vms.get(vm).cloned() else {
            return Err(Box::new(not_found(&format!("VirtualMachine:{vm}"))));
        };
        // An OVF export reads the disks of a stopped VM: vCenter refuses a running one.
        if vm.powered_on {
            let refused = failure(&format!("The operation is not allowed in the current state: virtual machine {} is powered on", vm.id));
            return Err(Box::new(value(refused)));
        }
        if !matches!(vc.content.libraries.get(library).map(|l| &l.kind), Some(LibraryKind::Local { .. })) {
            return Err(Box::new(not_found(&format!("local library {library}"))));
        }
        let existing = s(&body, &["target", "library_item_id"]).map(str::to_owned);
        if existing.is_none() && vc.content.items.values().any(|i| i.library_id == library && i.name == name)
        {
            return Err(Box::new(value(
                json!({"succeeded": false, "error": {"errors": [{"category": "SERVER", "error": {"@class": "com.vmware.vapi.std.errors.already_exists", "messages": [{"default_message": format!("an item named {name} already exists")}]}}]}}),
            )));
        }
        let id = existing.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let description = s(&body, &["create_spec", "description"]).unwrap_or_default();
        let item = Item { id: id.clone(), ..Item::new(library, name, "ovf", description, BTreeMap::new(), now_ms()) };
        vc.content.items.insert(id.clone(), item);
        // The files are what the VM is now (its disk, the lab's stand-in for its contents).
        let mut files = BTreeMap::new();
        files.insert(format!("{name}.ovf"), File { bytes: ovf_for(&vm).into_bytes() });
        files.insert("disk-0.vmdk".to_owned(), File { bytes: vm.disk.clone().into_bytes() });
        Ok(Box::new(move |vc: &mut VcenterSim| match vc.content.items.get_mut(&id) {
            Some(item) => {
                item.files = files;
                json!({"succeeded": true, "ovf_library_item_id": id})
            }
            None => failure(&format!("item {id} was deleted during the export")),
        }))
    })
    .await
}

/// A failed OVF call's answer: HTTP 200, with `succeeded: false` and the reason.
fn failure(message: &str) -> Value {
    json!({"succeeded": false, "error": {"errors": [{"category": "SERVER", "error": {"@class": "com.vmware.vapi.std.errors.error", "messages": [{"default_message": message}]}}]}})
}

pub(in crate::vcenter) async fn ovf_deploy(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    VapiId(id): VapiId,
    Query(q): Q,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    let token = s(&body, &["client_token"]).map(str::to_owned);
    long_operation(
        ctx,
        &headers,
        token,
        |t| t.deploy_ms,
        |vc| {
            if action(&q) != "deploy" {
                return Err(Box::new(invalid("unknown action")));
            }
            let Some(item) = vc.content.items.get(&id).cloned() else {
                return Err(Box::new(not_found(&format!("item {id}"))));
            };
            // Stricter than vCenter, which would fetch the content first and take its time:
            // a deploy from an item whose sync is not done is refused, so a client that does
            // not wait for the content shows.
            if !item.cached(now_ms()) {
                let message = format!("the content of library item {id} is not at this vCenter yet");
                return Err(Box::new(value(failure(&message))));
            }
            let Some(ovf) = item.files.iter().find(|(n, _)| n.ends_with(".ovf")).map(|(_, f)| f) else {
                return Err(Box::new(value(failure(&format!("item {id} has no OVF descriptor")))));
            };
            let guest = String::from_utf8_lossy(&ovf.bytes)
                .split("osType=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("otherGuest64")
                .to_owned();
            let annotation = s(&body, &["deployment_spec", "annotation"]).unwrap_or_default().to_owned();
            let disk = item.files.get("disk-0.vmdk").map(|f| String::from_utf8_lossy(&f.bytes).into_owned());
            let disk = disk.unwrap_or_default();
            let Some(name) = s(&body, &["deployment_spec", "name"]).map(str::to_owned) else {
                return Err(Box::new(invalid("deployment_spec.name is required")));
            };
            let pool = s(&body, &["target", "resource_pool_id"]).map(str::to_owned);
            let folder = s(&body, &["target", "folder_id"]).map(str::to_owned);
            let datastore = s(&body, &["deployment_spec", "default_datastore_id"]).map(str::to_owned);
            Ok(Box::new(move |vc: &mut VcenterSim| {
                let new = NewVm {
                    name: &name,
                    annotation: &annotation,
                    guest: &guest,
                    powered_on: false,
                    disk: &disk,
                };
                match place_vm(vc, &new, pool.as_deref(), folder.as_deref(), datastore.as_deref()) {
                    Ok(vm) => json!({"succeeded": true, "resource_id": {"type": "VirtualMachine", "id": vm}}),
                    Err(e) => failure(&e),
                }
            }))
        },
    )
    .await
}

/// What a deployment makes, apart from where.
pub(in crate::vcenter) struct NewVm<'a> {
    pub(in crate::vcenter) name: &'a str,
    pub(in crate::vcenter) annotation: &'a str,
    pub(in crate::vcenter) guest: &'a str,
    pub(in crate::vcenter) powered_on: bool,
    /// What its disk holds (see [`Vm::disk`]).
    pub(in crate::vcenter) disk: &'a str,
}

/// Creates a VM at the given placement; every moref must exist and belong to the datacenter.
pub(in crate::vcenter) fn place_vm(
    vc: &mut VcenterSim,
    new: &NewVm<'_>,
    pool: Option<&str>,
    folder: Option<&str>,
    datastore: Option<&str>,
) -> Result<String, String> {
    let pool = pool.ok_or("a resource pool is required")?;
    let pool =
        vc.resource_pools.get(pool).ok_or(format!("managed object not found: ResourcePool:{pool}"))?.clone();
    let cluster = vc.clusters.get(&pool.cluster).ok_or("resource pool has no cluster")?.clone();
    let dc = cluster.datacenter.clone();
    let folder = match folder {
        Some(f) if vc.folders.get(f).is_some_and(|x| x.kind == crate::vcenter::FolderKind::Vm) => {
            f.to_owned()
        }
        Some(f) => return Err(format!("managed object not found: Folder:{f}")),
        None => vc.datacenters.get(&dc).map(|d| d.vm_folder.clone()).ok_or("no datacenter")?,
    };
    let datastore = match datastore {
        Some(d) if vc.datastores.contains_key(d) => d.to_owned(),
        Some(d) => return Err(format!("managed object not found: Datastore:{d}")),
        None => vc.datastore_in(&dc).map(|d| d.id.clone()).ok_or("no datastore")?,
    };
    // A VM lives in one datacenter: its folder, resource pool and datastore all belong to it.
    if vc.datacenter_of(&folder).map(|d| &d.id) != Some(&dc) {
        return Err(format!("folder {folder} is not in the datacenter of resource pool {}", pool.id));
    }
    if vc.datastores.get(&datastore).map(|d| &d.datacenter) != Some(&dc) {
        return Err(format!("datastore {datastore} is not in the datacenter of resource pool {}", pool.id));
    }
    // VM names are unique per folder.
    if vc.vms.values().any(|v| v.folder == folder && v.name == new.name) {
        return Err(format!("The name '{}' already exists.", new.name));
    }
    let id = vc.moref("vm-");
    vc.vms.insert(
        id.clone(),
        Vm {
            id: id.clone(),
            name: new.name.to_owned(),
            datacenter: cluster.datacenter.clone(),
            folder,
            resource_pool: Some(pool.id.clone()),
            host: cluster.hosts.first().cloned().unwrap_or_default(),
            datastore,
            template: false,
            powered_on: new.powered_on,
            guest_id: new.guest.to_owned(),
            annotation: new.annotation.to_owned(),
            snapshots: Vec::new(),
            current_snapshot: None,
            disk: new.disk.to_owned(),
        },
    );
    Ok(id)
}

pub(in crate::vcenter) async fn vmtx_create(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    with_session(&ctx, &headers, |lab, site| {
        let vc = vc(lab, site);
        let spec = &body["spec"];
        let (Some(source), Some(name), Some(library)) =
            (s(spec, &["source_vm"]), s(spec, &["name"]), s(spec, &["library"]))
        else {
            return invalid("spec.source_vm, spec.name and spec.library are required");
        };
        let Some(vm) = vc.vms.get(source).cloned() else {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                &format!("managed object not found: VirtualMachine:{source}"),
            );
        };
        if !matches!(vc.content.libraries.get(library).map(|l| &l.kind), Some(LibraryKind::Local { .. })) {
            return not_found(&format!("local library {library}"));
        }
        if vc.content.items.values().any(|i| i.library_id == library && i.name == name) {
            return api_error(
                StatusCode::BAD_REQUEST,
                "already_exists",
                &format!("an item named {name} already exists"),
            );
        }
        let template = vc.moref("vm-");
        vc.vms.insert(
            template.clone(),
            Vm {
                id: template.clone(),
                name: name.to_owned(),
                template: true,
                powered_on: false,
                resource_pool: None,
                snapshots: Vec::new(),
                current_snapshot: None,
                ..vm.clone()
            },
        );
        let files = BTreeMap::from([(format!("{name}.vmtx"), File { bytes: ovf_for(&vm).into_bytes() })]);
        let description = s(spec, &["description"]).unwrap_or_default();
        let item = Item {
            template_vm: Some(template),
            ..Item::new(library, name, "vm-template", description, files, now_ms())
        };
        let id = item.id.clone();
        vc.content.items.insert(id.clone(), item);
        value(id)
    })
}

pub(in crate::vcenter) async fn vmtx_deploy(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    with_session(&ctx, &headers, |lab, site| {
        let vc = vc(lab, site);
        if action(&q) != "deploy" {
            return (StatusCode::NOT_FOUND, "404 page not found").into_response();
        }
        let Some(item) = vc.content.items.get(&id).cloned() else { return not_found(&format!("item {id}")) };
        // The VM template API deploys VM templates only.
        if item.kind != "vm-template" {
            return invalid(&format!("library item {id} is not a VM template"));
        }
        let guest = item
            .template_vm
            .as_ref()
            .and_then(|t| vc.vms.get(t))
            .map(|v| v.guest_id.clone())
            .unwrap_or_else(|| "otherGuest64".into());
        let spec = &body["spec"];
        let Some(name) = s(spec, &["name"]) else { return invalid("spec.name is required") };
        let pool = s(spec, &["placement", "resource_pool"]).map(str::to_owned).or_else(|| {
            s(spec, &["placement", "cluster"])
                .and_then(|c| vc.clusters.get(c))
                .map(|c| c.resource_pool.clone())
        });
        let folder = s(spec, &["placement", "folder"]).map(str::to_owned);
        let datastore = s(spec, &["disk_storage", "datastore"]).map(str::to_owned);
        let powered_on = spec["powered_on"].as_bool().unwrap_or(false);
        let disk =
            item.template_vm.as_ref().and_then(|t| vc.vms.get(t)).map(|v| v.disk.clone()).unwrap_or_default();
        let new = NewVm { name, annotation: "", guest: &guest, powered_on, disk: &disk };
        match place_vm(vc, &new, pool.as_deref(), folder.as_deref(), datastore.as_deref()) {
            Ok(vm) => value(vm),
            Err(e) => invalid(&e),
        }
    })
}

pub(in crate::vcenter) async fn delete_vm(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    with_session(&ctx, &headers, |lab, site| {
        let vc = vc(lab, site);
        match vc.vms.get(&id) {
            None => return not_found(&format!("vm {id}")),
            // vCenter refuses to delete a running VM.
            Some(vm) if vm.powered_on => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "not_allowed_in_current_state",
                    &format!("virtual machine {id} is powered on"),
                );
            }
            Some(_) => {}
        }
        vc.vms.remove(&id);
        for set in vc.tagging.attached.values_mut() {
            set.retain(|(_, o)| *o != id);
        }
        empty()
    })
}
