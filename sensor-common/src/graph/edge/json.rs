//! Edges in JSON: `{"ts_ns", "kind", "src", "dst", "host", "attrs": {...}}`.
//!
//! The edge is (de)serialized by hand rather than with `#[serde(flatten)]` on `data`:
//! flatten buffers every field of every record before parsing it again, and loading
//! millions of edges is the analysis's hot path. Here the attributes are parsed straight
//! into their kind's struct when `kind` comes first, as every vtrail writer puts it.

use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor},
    ser::SerializeStruct,
};

use super::{Edge, EdgeData, EdgeKind};

/// An edge's attributes alone, serialized as their kind's struct.
pub(super) struct AttrsOf<'a>(pub(super) &'a EdgeData);

impl Serialize for AttrsOf<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_attrs(s)
    }
}

impl Serialize for Edge {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let with_attrs = self.data.has_attrs();
        let mut st = s.serialize_struct("Edge", 5 + usize::from(with_attrs))?;
        st.serialize_field("ts_ns", &self.ts_ns)?;
        st.serialize_field("kind", &self.data.kind())?;
        st.serialize_field("src", &self.src)?;
        st.serialize_field("dst", &self.dst)?;
        st.serialize_field("host", &self.host)?;
        if with_attrs {
            st.serialize_field("attrs", &AttrsOf(&self.data))?;
        } else {
            st.skip_field("attrs")?;
        }
        st.end()
    }
}

struct AttrsSeed(EdgeKind);

impl<'de> DeserializeSeed<'de> for AttrsSeed {
    type Value = EdgeData;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<EdgeData, D::Error> {
        EdgeData::deserialize_attrs(self.0, d)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum EdgeField {
    TsNs,
    Kind,
    Src,
    Dst,
    Host,
    Attrs,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for Edge {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EdgeVisitor;
        impl<'de> Visitor<'de> for EdgeVisitor {
            type Value = Edge;
            fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
                f.write_str("an edge object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Edge, A::Error> {
                let (mut ts_ns, mut kind, mut src, mut dst, mut host) = (None, None, None, None, None);
                let mut data = None;
                // `attrs` before `kind` (a hand-written record): kept until the kind is known.
                let mut early_attrs: Option<serde_json::Value> = None;
                while let Some(field) = map.next_key::<EdgeField>()? {
                    match field {
                        EdgeField::TsNs => ts_ns = Some(map.next_value()?),
                        EdgeField::Kind => kind = Some(map.next_value::<EdgeKind>()?),
                        EdgeField::Src => src = Some(map.next_value()?),
                        EdgeField::Dst => dst = Some(map.next_value()?),
                        EdgeField::Host => host = Some(map.next_value()?),
                        EdgeField::Attrs => match kind {
                            Some(k) => data = Some(map.next_value_seed(AttrsSeed(k))?),
                            None => early_attrs = Some(map.next_value()?),
                        },
                        EdgeField::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let kind = kind.ok_or_else(|| de::Error::missing_field("kind"))?;
                let data = match data {
                    Some(data) => data,
                    None => {
                        let attrs = early_attrs.unwrap_or_else(|| serde_json::Value::Object(Default::default()));
                        EdgeData::deserialize_attrs(kind, attrs)
                            .map_err(|e| de::Error::custom(format_args!("{} attributes: {e}", kind.name())))?
                    }
                };
                Ok(Edge {
                    ts_ns: ts_ns.ok_or_else(|| de::Error::missing_field("ts_ns"))?,
                    src: src.ok_or_else(|| de::Error::missing_field("src"))?,
                    dst: dst.ok_or_else(|| de::Error::missing_field("dst"))?,
                    host: host.ok_or_else(|| de::Error::missing_field("host"))?,
                    data,
                })
            }
        }
        d.deserialize_struct("Edge", &["ts_ns", "kind", "src", "dst", "host", "attrs"], EdgeVisitor)
    }
}

