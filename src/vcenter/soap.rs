//! The vSphere SOAP half (`/sdk`): session, property collector reads and snapshot tasks.
//!
//! Requests are written as text (a handful of fixed shapes with escaped values); answers are
//! read into a namespace-aware [`Element`] tree. A session is the `vmware_soap_session` cookie;
//! a `NotAuthenticated` fault means it expired, and the call logs in again once.

use std::collections::BTreeMap;
use std::time::Duration;

use golden_xml::CompactString;
use golden_xml::escape;
use reqwest::StatusCode;

use super::{TASK_TIMEOUT, VcenterClient, VcenterError, lock};
use crate::connect::Repeat;
use crate::live::Moref;
use crate::wait::Waiting;
use golden_xml::{self as xml, Element};

const COOKIE: &str = "vmware_soap_session";

/// The most pages of one property read (`ContinueRetrievePropertiesEx`), of up to 1,000
/// objects each: far more than any inventory holds. A server that always hands out another
/// token stops here, with an error.
pub(crate) const MAX_PAGES: usize = 1000;

/// The service content morefs golden uses.
#[derive(Clone, Debug)]
pub(super) struct ServiceContent {
    pub root_folder: String,
    pub property_collector: String,
    pub session_manager: String,
    /// `about.instanceUuid`: the same for every URL of one vCenter.
    pub instance_uuid: String,
}

/// One object of a property collector answer: its moref, type and the properties that are set.
#[derive(Debug)]
pub(super) struct ObjectContent {
    pub id: Moref,
    pub kind: String,
    pub props: BTreeMap<CompactString, Element>,
}

impl ObjectContent {
    pub(super) fn text(&self, prop: &str) -> Option<&str> {
        self.props.get(prop).map(|v| v.text.trim())
    }

    pub(super) fn moref(&self, prop: &str) -> Option<Moref> {
        self.text(prop).filter(|t| !t.is_empty()).map(Moref::new)
    }
}

/// What to read: a type and the property paths of it.
pub(super) struct PropSpec<'a> {
    pub kind: &'a str,
    pub paths: &'a [&'a str],
}

fn envelope(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:vim25=\"urn:vim25\">\
         <soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
    )
}

fn moref_xml(tag: &str, kind: &str, id: &str) -> String {
    format!("<vim25:{tag} type=\"{}\">{}</vim25:{tag}>", escape(kind), escape(id))
}

/// The outcome of one SOAP exchange.
enum Reply {
    Ok(Element),
    Fault { kind: String, message: String },
}

impl VcenterClient {
    /// One SOAP request/answer with session `cookie`, if any; no session handling. Elements
    /// named in `prune` are left out of the answer ([`xml::parse_pruned`]).
    async fn soap_exchange(
        &self,
        op: &str,
        cookie: Option<String>,
        body: &str,
        prune: &[&str],
    ) -> Result<Reply, VcenterError> {
        let mut request = self
            .http
            .post(format!("{}/sdk", self.base))
            .header("content-type", "text/xml; charset=utf-8")
            .header("soapaction", "urn:vim25/6.5")
            .body(envelope(body));
        if let Some(c) = cookie {
            request = request.header("cookie", c);
        }
        let response = request.send().await.map_err(|e| self.err_transport(op, e))?;
        self.refuse_redirect(op, &response)?;
        let status = response.status();
        let new_cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(COOKIE))
            .and_then(|v| v.split(';').next())
            .map(str::to_owned);
        let body = self.body(op, response).await?;
        // Borrowed, not copied, when the answer is valid UTF-8 (as it should be).
        let text = String::from_utf8_lossy(&body);
        if !status.is_success() && status != StatusCode::INTERNAL_SERVER_ERROR {
            return Err(self.err_http(op, status.as_u16(), None, short(&text)));
        }
        let reply = match parse_reply(&text, prune) {
            Ok(reply) => reply,
            Err(_) if !status.is_success() => {
                return Err(self.err_http(op, status.as_u16(), None, short(&text)));
            }
            Err(e) => return Err(self.err_protocol(op, e)),
        };
        if let (Reply::Ok(_), Some(c)) = (&reply, new_cookie) {
            *lock(&self.soap_cookie) = Some(c);
        }
        Ok(reply)
    }

    pub(super) async fn service(&self) -> Result<ServiceContent, VcenterError> {
        if let Some(s) = lock(&self.service).clone() {
            return Ok(s);
        }
        let op = "read the service content";
        let body = format!(
            "<vim25:RetrieveServiceContent>{}</vim25:RetrieveServiceContent>",
            moref_xml("_this", "ServiceInstance", "ServiceInstance")
        );
        let reply = self
            .retry
            .run(op, || async {
                let cookie = lock(&self.soap_cookie).clone();
                match self.soap_exchange(op, cookie, &body, &[]).await? {
                    Reply::Ok(r) => Ok(r),
                    Reply::Fault { kind, message } => Err(self.fault(op, kind, message)),
                }
            })
            .await?;
        let content = reply.child("returnval").ok_or_else(|| self.err_protocol(op, "no returnval"))?;
        let get = |name: &str| {
            content
                .child_text(name)
                .map(str::to_owned)
                .ok_or_else(|| self.err_protocol(op, format!("no {name} in the service content")))
        };
        let service = ServiceContent {
            root_folder: get("rootFolder")?,
            property_collector: get("propertyCollector")?,
            session_manager: get("sessionManager")?,
            instance_uuid: content
                .child("about")
                .and_then(|a| a.child_text("instanceUuid"))
                .filter(|u| !u.trim().is_empty())
                .map(|u| u.trim().to_owned())
                .ok_or_else(|| self.err_protocol(op, "no about.instanceUuid in the service content"))?,
        };
        *lock(&self.service) = Some(service.clone());
        Ok(service)
    }

    fn fault(&self, op: &str, kind: String, message: String) -> VcenterError {
        VcenterError::Fault { site: self.site.clone(), operation: op.to_owned(), fault: kind, message }
    }

    /// The SOAP session cookie to send: the current one, or a new one when there is none or
    /// `stale` (the cookie a call was just refused with) is still the current one. One login at
    /// a time: calls that find the session expired together wait for one new session.
    pub(super) async fn soap_session(&self, stale: Option<&str>) -> Result<String, VcenterError> {
        let usable = || lock(&self.soap_cookie).clone().filter(|c| Some(c.as_str()) != stale);
        if let Some(cookie) = usable() {
            return Ok(cookie);
        }
        let _gate = self.soap_gate.lock().await;
        if let Some(cookie) = usable() {
            return Ok(cookie);
        }
        self.soap_login().await?;
        lock(&self.soap_cookie).clone().ok_or_else(|| {
            self.err_protocol("log in to the soap api", format!("no {COOKIE} cookie in the answer"))
        })
    }

    /// `Login` on the session manager; keeps the session cookie.
    async fn soap_login(&self) -> Result<(), VcenterError> {
        let op = "log in to the soap api";
        let service = self.service().await?;
        *lock(&self.soap_cookie) = None;
        let body = format!(
            "<vim25:Login>{}<vim25:userName>{}</vim25:userName><vim25:password>{}</vim25:password></vim25:Login>",
            moref_xml("_this", "SessionManager", &service.session_manager),
            escape(self.credentials.user.as_str()),
            escape(self.credentials.password.expose()),
        );
        match self.soap_exchange(op, None, &body, &[]).await? {
            Reply::Ok(_) if lock(&self.soap_cookie).is_some() => Ok(()),
            Reply::Ok(_) => Err(self.err_protocol(op, format!("no {COOKIE} cookie in the answer"))),
            Reply::Fault { kind, .. } if kind == "InvalidLogin" || kind == "NoPermission" => {
                Err(VcenterError::Login { site: self.site.clone(), user: self.credentials.user.clone() })
            }
            Reply::Fault { kind, message } => Err(self.fault(op, kind, message)),
        }
    }

    /// Ends the SOAP session, if there is one. Not retried.
    pub(super) async fn soap_logout(&self) -> Result<(), VcenterError> {
        let Some(cookie) = lock(&self.soap_cookie).clone() else { return Ok(()) };
        let service = self.service().await?;
        let body = format!(
            "<vim25:Logout>{}</vim25:Logout>",
            moref_xml("_this", "SessionManager", &service.session_manager)
        );
        let reply = self.soap_exchange("log out of the soap api", Some(cookie), &body, &[]).await;
        *lock(&self.soap_cookie) = None;
        match reply? {
            Reply::Ok(_) => Ok(()),
            Reply::Fault { kind, message } => Err(self.fault("log out of the soap api", kind, message)),
        }
    }

    /// One SOAP call with retries and a session: logs in first when needed and once more when
    /// the session has expired. Returns the response element (`<XxxResponse>`). For calls
    /// safe to repeat: reads, and changes whose repetition vCenter refuses harmlessly
    /// (powering off what is off).
    pub(super) async fn soap(&self, op: &str, body: &str) -> Result<Element, VcenterError> {
        self.soap_pruned(op, Repeat::Safe, body, &[]).await
    }

    /// [`Self::soap`] for a call that would act twice (a clone, a snapshot): sent again only
    /// after a failure that shows the first attempt had no effect.
    async fn soap_once(&self, op: &str, body: &str) -> Result<Element, VcenterError> {
        self.soap_pruned(op, Repeat::Once, body, &[]).await
    }

    /// [`Self::soap`], leaving the elements named in `prune` out of the answer.
    async fn soap_pruned(
        &self,
        op: &str,
        repeat: Repeat,
        body: &str,
        prune: &[&str],
    ) -> Result<Element, VcenterError> {
        self.retry
            .run_as(repeat, op, || async {
                let cookie = self.soap_session(None).await?;
                match self.soap_exchange(op, Some(cookie.clone()), body, prune).await? {
                    Reply::Ok(reply) => Ok(reply),
                    Reply::Fault { kind, .. } if kind == "NotAuthenticated" => {
                        let cookie = self.soap_session(Some(&cookie)).await?;
                        match self.soap_exchange(op, Some(cookie), body, prune).await? {
                            Reply::Ok(reply) => Ok(reply),
                            Reply::Fault { kind, message } => Err(self.fault(op, kind, message)),
                        }
                    }
                    Reply::Fault { kind, message } => Err(self.fault(op, kind, message)),
                }
            })
            .await
    }

    /// `RetrievePropertiesEx` of `specs` over `objects` (already written `objectSet`s),
    /// following `token`s with `ContinueRetrievePropertiesEx`. Elements named in `prune` are
    /// left out of the values.
    pub(super) async fn retrieve(
        &self,
        op: &str,
        object_set: &str,
        specs: &[PropSpec<'_>],
        prune: &[&str],
    ) -> Result<Vec<ObjectContent>, VcenterError> {
        let service = self.service().await?;
        let pc = moref_xml("_this", "PropertyCollector", &service.property_collector);
        let mut spec = String::from("<vim25:specSet>");
        for s in specs {
            spec.push_str(&format!("<vim25:propSet><vim25:type>{}</vim25:type>", s.kind));
            for p in s.paths {
                spec.push_str(&format!("<vim25:pathSet>{p}</vim25:pathSet>"));
            }
            spec.push_str("</vim25:propSet>");
        }
        spec.push_str(object_set);
        spec.push_str("</vim25:specSet>");
        let body = format!(
            "<vim25:RetrievePropertiesEx>{pc}{spec}<vim25:options><vim25:maxObjects>1000</vim25:maxObjects>\
             </vim25:options></vim25:RetrievePropertiesEx>"
        );
        let mut out = Vec::new();
        let mut reply = self.soap_pruned(op, Repeat::Safe, &body, prune).await?;
        for _ in 0..MAX_PAGES {
            let Some(result) = reply.children.into_iter().find(|c| c.name == "returnval") else {
                // No returnval: nothing matched.
                return Ok(out);
            };
            let mut token = None;
            for child in result.children {
                match child.name.as_str() {
                    "token" => token = Some(child.text.trim().to_owned()),
                    "objects" => out.push(
                        object_content(child).ok_or_else(|| self.err_protocol(op, "object without obj"))?,
                    ),
                    _ => {}
                }
            }
            let Some(token) = token.filter(|t| !t.is_empty()) else { return Ok(out) };
            let body = format!(
                "<vim25:ContinueRetrievePropertiesEx>{pc}<vim25:token>{}</vim25:token></vim25:ContinueRetrievePropertiesEx>",
                escape(token.as_str())
            );
            reply = self.soap_pruned(op, Repeat::Safe, &body, prune).await?;
        }
        Err(self.err_protocol(op, format!("vcenter still hands out more after {MAX_PAGES} pages of objects")))
    }

    /// Reads properties of one object.
    pub(super) async fn retrieve_one(
        &self,
        op: &str,
        kind: &str,
        id: &str,
        paths: &[&str],
    ) -> Result<Option<ObjectContent>, VcenterError> {
        let object_set = format!("<vim25:objectSet>{}</vim25:objectSet>", moref_xml("obj", kind, id));
        Ok(self.retrieve(op, &object_set, &[PropSpec { kind, paths }], &[]).await?.pop())
    }

    /// The `objectSet` that walks the inventory down from the root folder: folders, datacenters
    /// and their VM, host and datastore folders, compute resources and their resource pools.
    /// The walk is part of the one read; a container view would take a round trip of its own.
    pub(crate) fn inventory_object_set(root_folder: &str) -> String {
        const FOLLOW: &[&str] = &["folder", "vmFolder", "hostFolder", "datastoreFolder", "computePool"];
        let names = |names: &[&str]| -> String {
            names
                .iter()
                .map(|n| format!("<vim25:selectSet><vim25:name>{n}</vim25:name></vim25:selectSet>"))
                .collect()
        };
        let spec = |name: &str, kind: &str, path: &str, then: &[&str]| {
            format!(
                "<vim25:selectSet xsi:type=\"vim25:TraversalSpec\"><vim25:name>{name}</vim25:name><vim25:type>{kind}</vim25:type>\
                 <vim25:path>{path}</vim25:path><vim25:skip>false</vim25:skip>{}</vim25:selectSet>",
                names(then)
            )
        };
        format!(
            "<vim25:objectSet>{}<vim25:skip>true</vim25:skip>{}{}{}{}{}{}</vim25:objectSet>",
            moref_xml("obj", "Folder", root_folder),
            spec("folder", "Folder", "childEntity", FOLLOW),
            spec("vmFolder", "Datacenter", "vmFolder", &["folder"]),
            spec("hostFolder", "Datacenter", "hostFolder", &["folder"]),
            spec("datastoreFolder", "Datacenter", "datastoreFolder", &["folder"]),
            spec("computePool", "ComputeResource", "resourcePool", &["resourcePool"]),
            spec("resourcePool", "ResourcePool", "resourcePool", &["resourcePool"]),
        )
    }

    /// Takes a snapshot of `vm` (no memory, not quiesced) and waits for it; returns its moref.
    pub async fn create_snapshot(
        &self,
        vm: &Moref,
        name: &str,
        description: &str,
    ) -> Result<Moref, VcenterError> {
        let op = format!("snapshot vm {vm} as `{name}`");
        let body = format!(
            "<vim25:CreateSnapshot_Task>{}<vim25:name>{}</vim25:name><vim25:description>{}</vim25:description>\
             <vim25:memory>false</vim25:memory><vim25:quiesce>false</vim25:quiesce></vim25:CreateSnapshot_Task>",
            moref_xml("_this", "VirtualMachine", vm.as_str()),
            escape(name),
            escape(description)
        );
        let reply = self.soap_once(&op, &body).await?;
        let task =
            reply.child_text("returnval").ok_or_else(|| self.err_protocol(&op, "no task in the answer"))?;
        let result = self.wait_task(&op, task, TASK_TIMEOUT).await?;
        result.ok_or_else(|| self.err_protocol(&op, "the task has no result")).map(Moref::new)
    }

    /// Clones `vm` into a new powered-off VM placed as `spec` says (`CloneVM_Task`), from
    /// `snapshot` when given: the clone holds what the snapshot holds, whatever the VM did
    /// since. Returns the new VM's moref.
    pub async fn clone_vm(
        &self,
        vm: &Moref,
        snapshot: Option<&Moref>,
        spec: &super::DeploySpec,
    ) -> Result<Moref, VcenterError> {
        let op = format!("clone vm {vm} as `{}`", spec.name);
        // Elements in the order of the WSDL: VirtualMachineRelocateSpec has datastore before
        // pool; VirtualMachineCloneSpec has location, template, powerOn, snapshot.
        let from =
            snapshot.map(|s| moref_xml("snapshot", "VirtualMachineSnapshot", s.as_str())).unwrap_or_default();
        let body = format!(
            "<vim25:CloneVM_Task>{}{}<vim25:name>{}</vim25:name><vim25:spec><vim25:location>{}{}</vim25:location>\
             <vim25:template>false</vim25:template><vim25:powerOn>false</vim25:powerOn>{from}</vim25:spec></vim25:CloneVM_Task>",
            moref_xml("_this", "VirtualMachine", vm.as_str()),
            moref_xml("folder", "Folder", spec.folder.as_str()),
            escape(&spec.name),
            moref_xml("datastore", "Datastore", spec.datastore.as_str()),
            moref_xml("pool", "ResourcePool", spec.resource_pool.as_str()),
        );
        let reply = self.soap_once(&op, &body).await?;
        let task =
            reply.child_text("returnval").ok_or_else(|| self.err_protocol(&op, "no task in the answer"))?;
        let result = self.wait_task(&op, task, TASK_TIMEOUT).await?;
        result.ok_or_else(|| self.err_protocol(&op, "the task has no result")).map(Moref::new)
    }

    /// Whether `vm` is powered on (`runtime.powerState`).
    pub async fn is_powered_on(&self, vm: &Moref) -> Result<bool, VcenterError> {
        let op = format!("read the power state of vm {vm}");
        let object = self.retrieve_one(&op, "VirtualMachine", vm.as_str(), &["runtime.powerState"]).await?;
        let object = object.ok_or_else(|| VcenterError::NotFound {
            site: self.site.clone(),
            kind: "vm",
            name: vm.to_string(),
            scope: "the inventory".to_owned(),
        })?;
        Ok(object.text("runtime.powerState") == Some("poweredOn"))
    }

    /// Stops `vm` so that it can be deleted (vCenter refuses to delete a running VM): asks the
    /// guest to shut down (`ShutdownGuest`), waits up to `guest_timeout` for it, then powers
    /// the VM off (`PowerOffVM_Task`). A guest without VMware Tools cannot be asked and is
    /// powered off at once. Returns whether the VM was running.
    pub async fn stop_vm(&self, vm: &Moref, guest_timeout: Duration) -> Result<bool, VcenterError> {
        if !self.is_powered_on(vm).await? {
            return Ok(false);
        }
        let this = moref_xml("_this", "VirtualMachine", vm.as_str());
        let op = format!("shut down the guest of vm {vm}");
        match self.soap(&op, &format!("<vim25:ShutdownGuest>{this}</vim25:ShutdownGuest>")).await {
            Ok(_) => {
                let waiting = Waiting::new(guest_timeout, Duration::from_secs(2));
                while self.is_powered_on(vm).await? {
                    if !waiting.next().await {
                        break;
                    }
                }
            }
            // Off already (a race), or no tools to ask: power off below.
            Err(VcenterError::Fault { fault, .. })
                if matches!(
                    fault.as_str(),
                    "InvalidPowerState" | "ToolsUnavailable" | "ToolsUnavailableFault"
                ) => {}
            Err(e) => return Err(e),
        }
        if self.is_powered_on(vm).await? {
            let op = format!("power off vm {vm}");
            let reply =
                self.soap(&op, &format!("<vim25:PowerOffVM_Task>{this}</vim25:PowerOffVM_Task>")).await;
            match reply {
                Ok(reply) => {
                    let task = reply
                        .child_text("returnval")
                        .ok_or_else(|| self.err_protocol(&op, "no task in the answer"))?;
                    self.wait_task(&op, task, TASK_TIMEOUT).await?;
                }
                Err(VcenterError::Fault { fault, .. }) if fault == "InvalidPowerState" => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Polls a task until it succeeds (its `info.result`, if any) or fails.
    async fn wait_task(
        &self,
        op: &str,
        task: &str,
        timeout: Duration,
    ) -> Result<Option<String>, VcenterError> {
        let waiting = Waiting::new(timeout, Duration::from_secs(2));
        loop {
            let info = self
                .retrieve_one(op, "Task", task, &["info.state", "info.result", "info.error"])
                .await?
                .ok_or_else(|| self.err_protocol(op, format!("task {task} vanished")))?;
            match info.text("info.state") {
                Some("success") => {
                    return Ok(info.text("info.result").filter(|t| !t.is_empty()).map(str::to_owned));
                }
                Some("error") => {
                    let error = info.props.get("info.error");
                    let message = error
                        .and_then(|e| e.child_text("localizedMessage"))
                        .filter(|m| !m.is_empty())
                        .map(str::to_owned)
                        .or_else(|| {
                            error.and_then(|e| e.child("fault")).and_then(|f| f.xsi_type()).map(str::to_owned)
                        })
                        .unwrap_or_else(|| "the task failed without a reason".to_owned());
                    return Err(self.err_failed(op, message));
                }
                _ => {}
            }
            if !waiting.next().await {
                return Err(VcenterError::Timeout {
                    site: self.site.clone(),
                    operation: op.to_owned(),
                    timeout,
                });
            }
        }
    }
}

/// The response element of a SOAP envelope, or its fault: the fault type comes from the detail
/// element's `xsi:type` (any prefix), else from its name (`NotAuthenticatedFault`).
fn parse_reply(text: &str, prune: &[&str]) -> Result<Reply, String> {
    let root = xml::parse_pruned(text, prune).map_err(|e| format!("invalid xml: {e}"))?;
    let reply = root
        .children
        .into_iter()
        .find(|c| c.name == "Body")
        .and_then(|b| b.children.into_iter().next())
        .ok_or("no soap body")?;
    if reply.name != "Fault" {
        return Ok(Reply::Ok(reply));
    }
    let message = reply.child_text("faultstring").unwrap_or_default().to_owned();
    let kind = reply
        .child("detail")
        .and_then(|d| d.children.first())
        .map(|f| f.xsi_type().unwrap_or(f.name.trim_end_matches("Fault")).to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    Ok(Reply::Fault { kind, message })
}

fn object_content(objects: Element) -> Option<ObjectContent> {
    let mut id = None;
    let mut props = BTreeMap::new();
    for child in objects.children {
        match child.name.as_str() {
            "obj" => {
                id = Some((Moref::new(child.text.trim()), child.attr("type").unwrap_or_default().to_owned()));
            }
            "propSet" => {
                let mut name = None;
                let mut val = None;
                for part in child.children {
                    match part.name.as_str() {
                        "name" => name = Some(CompactString::from(part.text.trim())),
                        "val" => val = Some(part),
                        _ => {}
                    }
                }
                if let (Some(n), Some(v)) = (name, val) {
                    props.insert(n, v);
                }
            }
            _ => {}
        }
    }
    let (id, kind) = id?;
    Some(ObjectContent { id, kind, props })
}

/// A short body for an error message (HTML error pages are dropped).
fn short(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty() && t.len() < 300 && !t.starts_with('<')).then(|| t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_typed_by_their_detail() {
        let vcsim = r#"<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>Login failure</faultstring><detail><InvalidLoginFault xmlns="urn:vim25" xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance" XMLSchema-instance:type="InvalidLogin"></InvalidLoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;
        let Ok(Reply::Fault { kind, message }) = parse_reply(vcsim, &[]) else { panic!("a fault") };
        assert_eq!((kind.as_str(), message.as_str()), ("InvalidLogin", "Login failure"));
        let untyped = vcsim.replace(r#" XMLSchema-instance:type="InvalidLogin""#, "");
        let Ok(Reply::Fault { kind, .. }) = parse_reply(&untyped, &[]) else { panic!("a fault") };
        assert_eq!(kind, "InvalidLogin");
    }

    #[test]
    fn objects_keep_set_properties_only() {
        let text = r#"<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><objects><obj type="Datastore">/tmp/x/govcsim-DC0-LocalDS_0-1@folder-5</obj><propSet><name>name</name><val xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xsd:string">LocalDS_0</val></propSet></objects></returnval></RetrievePropertiesExResponse></soapenv:Body></soapenv:Envelope>"#;
        let Ok(Reply::Ok(reply)) = parse_reply(text, &[]) else { panic!("a reply") };
        let returnval = reply.children.into_iter().next().expect("returnval");
        let object = object_content(returnval.children.into_iter().next().expect("objects")).expect("object");
        assert_eq!(object.id.as_str(), "/tmp/x/govcsim-DC0-LocalDS_0-1@folder-5");
        assert_eq!((object.kind.as_str(), object.text("name")), ("Datastore", Some("LocalDS_0")));
        assert_eq!(object.moref("parent"), None);
    }
}
