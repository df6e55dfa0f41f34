//! What the app itself says outside the web UI (the tray's menu and line, notifications), in the
//! language the UI uses: Spanish or English. Until the UI tells it (or `language` in
//! desktop.toml), the operating system's locale decides, Spanish unless it is English.

/// The app's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    Es,
    En,
}

impl Lang {
    /// `es` or `en`.
    pub(crate) fn parse(code: &str) -> Option<Self> {
        match code {
            "es" => Some(Self::Es),
            "en" => Some(Self::En),
            _ => None,
        }
    }

    /// The code kept in desktop.toml.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Es => "es",
            Self::En => "en",
        }
    }

    /// From the locale variables (`LC_ALL`, `LC_MESSAGES`, `LANG`, the first one set).
    pub(crate) fn of_locale(var: impl Fn(&str) -> Option<String>) -> Self {
        let locale = ["LC_ALL", "LC_MESSAGES", "LANG"].iter().find_map(|k| var(k).filter(|v| !v.is_empty()));
        if locale.is_some_and(|l| l.starts_with("en")) { Self::En } else { Self::Es }
    }

    /// The tray menu: open, sync now, quit.
    pub(crate) fn menu(self) -> [&'static str; 3] {
        match self {
            Self::Es => ["Abrir DashOffice", "Sincronizar ahora", "Salir"],
            Self::En => ["Open DashOffice", "Sync now", "Quit"],
        }
    }

    /// The tray's sync line.
    pub(crate) fn sync_line(self, enabled: bool, connected: bool, pending: u64) -> String {
        match (self, enabled, connected, pending) {
            (Self::Es, false, ..) => "Solo en esta computadora".into(),
            (Self::En, false, ..) => "This computer only".into(),
            (Self::Es, true, true, 0) => "Sincronizado".into(),
            (Self::En, true, true, 0) => "Synced".into(),
            (Self::Es, true, true, n) => format!("Sincronizando {n} cambios"),
            (Self::En, true, true, n) => format!("Syncing {n} changes"),
            (Self::Es, true, false, n) => format!("Sin conexión, {n} cambios guardados"),
            (Self::En, true, false, n) => format!("Offline, {n} changes kept"),
        }
    }

    /// The tray's tooltip.
    pub(crate) fn tooltip(self, sync: &str, unread: u64) -> String {
        match self {
            Self::Es => format!("DashOffice — {sync} — {unread} sin leer"),
            Self::En => format!("DashOffice — {sync} — {unread} unread"),
        }
    }

    /// A notification for a conversation assigned to the person using this computer.
    pub(crate) fn assigned(self, customer: &str) -> (String, String) {
        match self {
            Self::Es => (format!("Conversación asignada: {customer}"), "Te asignaron esta conversación".into()),
            Self::En => (format!("Conversation assigned: {customer}"), "This conversation was assigned to you".into()),
        }
    }

    /// A notification for a support ticket given to the person using this computer.
    pub(crate) fn ticket_assigned(self, number: &str, subject: &str) -> (String, String) {
        match self {
            Self::Es => (format!("Ticket asignado: {number}"), format!("Te asignaron «{subject}»")),
            Self::En => (format!("Ticket assigned: {number}"), format!("“{subject}” was assigned to you")),
        }
    }

    /// A notification for a file the UI saved (an invoice, an export), or could not save.
    pub(crate) fn saved(self, name: &str, folder: &str, ok: bool) -> (String, String) {
        match (self, ok) {
            (Self::Es, true) => (format!("Guardado: {name}"), format!("En {folder}")),
            (Self::En, true) => (format!("Saved: {name}"), format!("In {folder}")),
            (Self::Es, false) => {
                (format!("No se pudo guardar {name}"), format!("Revisa el espacio libre y los permisos de {folder}"))
            }
            (Self::En, false) => {
                (format!("Could not save {name}"), format!("Check the free space and permissions of {folder}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Lang;

    #[test]
    fn the_locale_decides_until_the_ui_tells() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_string())
        };
        assert_eq!(Lang::of_locale(env(&[("LANG", "en_US.UTF-8")])), Lang::En);
        assert_eq!(Lang::of_locale(env(&[("LANG", "es_MX.UTF-8")])), Lang::Es);
        assert_eq!(Lang::of_locale(env(&[("LC_ALL", "en_GB.UTF-8"), ("LANG", "es_MX.UTF-8")])), Lang::En);
        assert_eq!(Lang::of_locale(env(&[("LANG", "C.UTF-8")])), Lang::Es);
        assert_eq!(Lang::of_locale(env(&[])), Lang::Es);
        assert_eq!(Lang::parse("en").map(Lang::code), Some("en"));
        assert_eq!(Lang::parse("fr"), None);
        assert_eq!(Lang::En.sync_line(true, false, 3), "Offline, 3 changes kept");
        assert_eq!(Lang::Es.tooltip("Sincronizado", 2), "DashOffice — Sincronizado — 2 sin leer");
        assert_eq!(
            Lang::Es.saved("P-000012.pdf", "/home/ana/Descargas", true),
            ("Guardado: P-000012.pdf".into(), "En /home/ana/Descargas".into())
        );
    }
}
