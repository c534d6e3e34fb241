//! `<program> config show`: each resolved setting and where it came from. Never connects.

use serde_json::json;

use super::args::ConfigCommand;
use super::context::Context;
use super::output::{self, Output, Tone};

pub(crate) fn run(command: ConfigCommand, context: &Context, out: &Output) {
    match command {
        ConfigCommand::Show => show(context, out),
    }
}

fn show(context: &Context, out: &Output) {
    let rows = context.settings().rows();
    if out.json() {
        let entries: Vec<_> = rows
            .iter()
            .map(|(name, value, source)| json!({ "setting": name, "value": value, "source": source }))
            .collect();
        out.print_json(&serde_json::Value::Array(entries));
        return;
    }
    let mut table = vec![vec![
        "SETTING".to_owned(),
        "VALUE".to_owned(),
        "FROM".to_owned(),
    ]];
    table.extend(
        rows.into_iter().map(|(name, value, source)| {
            vec![name.to_owned(), value, out.paint(Tone::Dim, &source)]
        }),
    );
    out.print(&output::table(&table));
}
