//! A small namespace-aware element tree for SOAP answers.
//!
//! SOAP replies are small enough to hold in memory, and walking a tree is much simpler than
//! driving a pull parser per call. Names are kept as (namespace, local name) so that prefixes
//! never matter: vcsim writes `XMLSchema-instance:type` where vCenter writes `xsi:type`, and both
//! resolve to the XML Schema instance namespace here.

use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

pub const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

#[derive(Debug, Default)]
pub struct Element {
    pub name: String,
    /// (namespace, local name, value)
    pub attrs: Vec<(Option<String>, String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the child `name`, trimmed.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// An attribute without a namespace (such as a moref's `type`).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(ns, n, _)| ns.is_none() && n == name).map(|(_, _, v)| v.as_str())
    }

    /// The local part of `xsi:type`, whatever prefix the server bound the namespace to.
    pub fn xsi_type(&self) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(ns, n, _)| ns.as_deref() == Some(XSI) && n == "type")
            .map(|(_, _, v)| v.rsplit(':').next().unwrap_or(v))
    }
}

/// Parses a whole document into its root element.
pub fn parse(text: &str) -> Result<Element, String> {
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    loop {
        let (_, event) = reader.read_resolved_event().map_err(|e| e.to_string())?;
        let closed = match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let mut element = Element {
                    name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
                    ..Element::default()
                };
                for attr in start.attributes() {
                    let attr = attr.map_err(|e| e.to_string())?;
                    if attr.key.as_namespace_binding().is_some() {
                        continue;
                    }
                    let (resolved, local) = reader.resolve_attribute(attr.key);
                    let value = attr.unescape_value().map_err(|e| e.to_string())?.into_owned();
                    element.attrs.push((
                        namespace(resolved),
                        String::from_utf8_lossy(local.as_ref()).into_owned(),
                        value,
                    ));
                }
                stack.push(element);
                // An empty element is closed at once; a start tag waits for its end.
                matches!(event, Event::Empty(_))
            }
            Event::End(_) => true,
            Event::Text(t) => {
                push_text(&mut stack, &t.decode().map_err(|e| e.to_string())?);
                false
            }
            Event::CData(t) => {
                push_text(&mut stack, &t.decode().map_err(|e| e.to_string())?);
                false
            }
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c,
                    None => match r.decode().map_err(|e| e.to_string())?.as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => return Err(format!("unknown entity &{other};")),
                    },
                };
                push_text(&mut stack, ch.encode_utf8(&mut [0; 4]));
                false
            }
            Event::Eof => return Err("the document ends inside an element or is empty".to_owned()),
            _ => false,
        };
        if closed {
            let Some(done) = stack.pop() else { return Err("unbalanced end tag".to_owned()) };
            match stack.last_mut() {
                Some(parent) => parent.children.push(done),
                None => return Ok(done),
            }
        }
    }
}

fn namespace(resolved: ResolveResult<'_>) -> Option<String> {
    match resolved {
        ResolveResult::Bound(ns) => Some(String::from_utf8_lossy(ns.0).into_owned()),
        _ => None,
    }
}

fn push_text(stack: &mut [Element], text: &str) {
    if let Some(top) = stack.last_mut() {
        top.text.push_str(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_resolve_whatever_the_prefix() {
        let doc = r#"<?xml version="1.0"?><a xmlns="urn:vim25"><val xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance" XMLSchema-instance:type="xsd:string" type="Folder">x &amp; y&#33;</val><e/><val xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="ArrayOfManagedObjectReference"/></a>"#;
        let root = parse(doc).expect("parses");
        let vals: Vec<&Element> = root.children("val").collect();
        assert_eq!(vals[0].xsi_type(), Some("string"));
        assert_eq!(vals[0].attr("type"), Some("Folder"));
        assert_eq!(vals[0].text, "x & y!");
        assert_eq!(vals[1].xsi_type(), Some("ArrayOfManagedObjectReference"));
        assert_eq!(root.children.len(), 3);
    }
}
