//! CLI output: aligned tables for people, proto3 JSON for machines.

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use prost_types::Timestamp;

use crate::grpc::pb;

/// Prints `message` as proto3 JSON. `full_name` is its proto name, e.g. `herald.v1.User`.
pub fn print_json<M: Message>(full_name: &str, message: &M) -> anyhow::Result<()> {
    let dynamic = dynamic(full_name, message)?;
    let options = SerializeOptions::new().skip_default_fields(false);
    let mut out = serde_json::Serializer::pretty(std::io::stdout());
    dynamic.serialize_with_options(&mut out, &options)?;
    println!();
    Ok(())
}

/// Prints `message` as one line of compact proto3 JSON (for streams).
pub fn print_json_line<M: Message>(full_name: &str, message: &M) -> anyhow::Result<()> {
    let dynamic = dynamic(full_name, message)?;
    println!("{}", serde_json::to_string(&dynamic)?);
    Ok(())
}

/// `message` as a reflective message of type `full_name`, for JSON output.
fn dynamic<M: Message>(full_name: &str, message: &M) -> anyhow::Result<DynamicMessage> {
    let pool = DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET)?;
    let descriptor =
        pool.get_message_by_name(full_name).ok_or_else(|| anyhow::anyhow!("unknown message {full_name}"))?;
    Ok(DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())?)
}

/// Prints rows under headers with aligned columns.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// RFC 3339 text of a timestamp, or `-`.
pub fn time(t: Option<&Timestamp>) -> String {
    t.and_then(|t| {
        time::OffsetDateTime::from_unix_timestamp(t.seconds)
            .ok()
            .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
    })
    .unwrap_or_else(|| "-".into())
}

/// Short upper-case name of a proto enum value (prefix removed).
pub fn enum_name(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_owned()
}
