//! Files the UI saves — an order's invoice or quote PDF, a CSV export, a backup, a message's
//! attachment: into the user's Downloads folder under the name the page gives, never over a file
//! already there ("P-000012 (1).pdf"), and only from the app's own pages. When WebKit has written
//! it, a notification says where (`Backend::saved`).

use std::path::{Path, PathBuf};

use tauri::{AppHandle, Manager, Runtime};

/// The user's Downloads folder (`XDG_DOWNLOAD_DIR` on Linux), or `Downloads` in their home folder
/// when none is set.
pub(crate) fn folder<R: Runtime>(app: &AppHandle<R>) -> PathBuf {
    let paths = app.path();
    paths
        .download_dir()
        .or_else(|_| paths.home_dir().map(|h| h.join("Downloads")))
        .unwrap_or_else(|_| std::env::temp_dir())
}

/// A path in `folder` for a file the page calls `name` that does not exist yet: `name` itself, or
/// `stem (1).ext`, `stem (2).ext`…. Only the last component of `name` counts (a page cannot
/// write elsewhere); an empty one becomes `download`.
pub(crate) fn unique(folder: &Path, name: &str) -> PathBuf {
    let base = Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|n| !n.trim().is_empty() && n != "." && n != "..")
        .unwrap_or_else(|| "download".into());
    let first = folder.join(&base);
    if !first.exists() {
        return first;
    }
    // The extension starts at the first dot after the first character: `copia.tar.gz` keeps
    // `.tar.gz`, `.env` has none.
    let (stem, ext) = match base.char_indices().skip(1).find(|(_, c)| *c == '.') {
        Some((i, _)) => base.split_at(i),
        None => (base.as_str(), ""),
    };
    (1u32..).map(|n| folder.join(format!("{stem} ({n}){ext}"))).find(|p| !p.exists()).unwrap_or(first)
}

/// A download the app allows: what its own pages made (`blob:` and `data:` URLs) or serve (its
/// loopback server at `base`, `http://127.0.0.1:PORT`). Anything else is refused.
pub(crate) fn allowed(url: &str, base: &str) -> bool {
    url.starts_with("blob:")
        || url.starts_with("data:")
        || url.strip_prefix(base).is_some_and(|rest| rest.starts_with('/'))
}

/// Whether a saved file opens from the app with its program: documents, spreadsheets, images,
/// audio and video, by the end of its name. Anything else (a backup, or a customer's attachment
/// that a program could run: `.sh`, `.desktop`, `.exe`, `.jar`…) is only shown in its folder.
pub(crate) fn opens_here(path: &Path) -> bool {
    const KINDS: &[&str] = &[
        "pdf", "csv", "txt", "png", "jpg", "jpeg", "gif", "webp", "heic", "mp3", "ogg", "oga", "opus", "m4a", "aac",
        "amr", "wav", "mp4", "3gp", "mov", "webm", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "ods", "odp",
        "rtf",
    ];
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| KINDS.iter().any(|k| k.eq_ignore_ascii_case(e)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_file_never_replaces_one_already_there() {
        let dir = std::env::temp_dir().join(format!("dashoffice-downloads-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(unique(&dir, "P-000012.pdf"), dir.join("P-000012.pdf"));
        std::fs::write(dir.join("P-000012.pdf"), b"%PDF").unwrap();
        assert_eq!(unique(&dir, "P-000012.pdf"), dir.join("P-000012 (1).pdf"));
        std::fs::write(dir.join("P-000012 (1).pdf"), b"%PDF").unwrap();
        assert_eq!(unique(&dir, "P-000012.pdf"), dir.join("P-000012 (2).pdf"));
        std::fs::write(dir.join("copia.tar.gz"), b"").unwrap();
        assert_eq!(unique(&dir, "copia.tar.gz"), dir.join("copia (1).tar.gz"));
        std::fs::write(dir.join(".env"), b"").unwrap();
        assert_eq!(unique(&dir, ".env"), dir.join(".env (1)"));
        // A page cannot reach outside the folder.
        assert_eq!(unique(&dir, "../../etc/passwd"), dir.join("passwd"));
        assert_eq!(unique(&dir, ""), dir.join("download"));
        assert_eq!(unique(&dir, ".."), dir.join("download"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_documents_and_media_open_from_the_app() {
        assert!(opens_here(Path::new("/home/ana/Descargas/CEN-C9HR52-000001 (1).pdf")));
        assert!(opens_here(Path::new("/d/orders.CSV")));
        assert!(opens_here(Path::new("/d/foto.jpeg")));
        assert!(!opens_here(Path::new("/d/dashoffice-backup-2026-12-04.db")));
        assert!(!opens_here(Path::new("/d/factura.pdf.sh")));
        assert!(!opens_here(Path::new("/d/lanzador.desktop")));
        assert!(!opens_here(Path::new("/d/README")));
    }

    #[test]
    fn only_the_apps_own_pages_save_files() {
        let base = "http://127.0.0.1:41234";
        assert!(allowed("blob:http://127.0.0.1:41234/5b1c", base));
        assert!(allowed("data:text/csv,sku", base));
        assert!(allowed("http://127.0.0.1:41234/api/v1/orders/x/invoice.pdf", base));
        assert!(!allowed("http://127.0.0.1:412345/x", base));
        assert!(!allowed("https://example.com/file.exe", base));
        assert!(!allowed("file:///etc/passwd", base));
    }
}
