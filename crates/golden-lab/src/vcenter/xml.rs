//! A small element tree for the lab's SOAP requests: local names only, namespaces resolved by
//! dropping prefixes, which is all a request of the vim25 API needs.

use quick_xml::events::Event;
use quick_xml::reader::NsReader;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Element {
    pub name: String,
    /// Attributes by local name (`type`, and `xsi:type` as `type` too, so look at `attr_ns`).
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub(super) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub(super) fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    pub(super) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The text of child `name`, trimmed.
    pub(super) fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }
}

/// Parses `xml` into its root element.
pub(super) fn parse(xml: &[u8]) -> Result<Element, String> {
    let mut reader = NsReader::from_reader(xml);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Element> = Vec::new();
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => stack.push(element(&e)),
            Ok(Event::Empty(e)) => {
                let el = element(&e);
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Ok(Event::End(_)) => {
                let Some(done) = stack.pop() else { return Err("unbalanced end tag".into()) };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return Ok(done),
                }
            }
            Ok(Event::Text(t)) => {
                if let Some(top) = stack.last_mut() {
                    let text = t.decode().map_err(|e| e.to_string())?;
                    top.text.push_str(&quick_xml::escape::unescape(&text).map_err(|e| e.to_string())?);
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if let Some(top) = stack.last_mut() {
                    let name = r.decode().map_err(|e| e.to_string())?;
                    let entity = format!("&{name};");
                    top.text.push_str(&quick_xml::escape::unescape(&entity).map_err(|e| e.to_string())?);
                }
            }
            Ok(Event::CData(t)) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Ok(Event::Eof) => return Err("the document ended early".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("malformed XML at byte {}: {e}", reader.buffer_position())),
        }
        buf.clear();
    }
}

fn element(e: &quick_xml::events::BytesStart<'_>) -> Element {
    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
    let attrs = e
        .attributes()
        .flatten()
        .map(|a| {
            let key = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
            let value = a.unescape_value().map(|v| v.into_owned()).unwrap_or_default();
            (key, value)
        })
        .collect();
    Element { name, attrs, text: String::new(), children: Vec::new() }
}

/// Escapes text for an XML element or attribute.
pub(super) fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_dropped_and_text_unescaped() {
        let doc = br#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:v="urn:vim25"><soapenv:Body><v:Login><v:_this type="SessionManager">SessionManager</v:_this><v:userName>a&amp;b</v:userName></v:Login></soapenv:Body></soapenv:Envelope>"#;
        let root = parse(doc).expect("parses");
        let login = &root.child("Body").expect("body").children[0];
        assert_eq!(login.name, "Login");
        assert_eq!(login.child("_this").and_then(|t| t.attr("type")), Some("SessionManager"));
        assert_eq!(login.text_of("userName"), Some("a&b"));
    }
}
