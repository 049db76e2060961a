//! Regenerate `docs/settings.md` from the settings table.

fn main() -> std::io::Result<()> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/settings.md");
    std::fs::write(&path, wsgi_server::settings::reference_markdown())?;
    println!("wrote {}", path.display());
    Ok(())
}
