"""Every word the status site prints, in English and in French, and how it writes times.

Phase and impact wording comes from the notices, so a partner reads the same words in the
e-mail and on the site.
"""

from __future__ import annotations

from datetime import datetime

from gcmschange.notify.rendering import IMPACT_LABELS, LABELS, when_en, when_fr

LANGS = ("en", "fr")

_WORDS: dict[str, tuple[str, str]] = {
    "site.title": ("Service status", "État des services"),
    "skip": ("Skip to main content", "Passer au contenu principal"),
    "switch": ("Français", "English"),
    "switch.lang": ("fr", "en"),
    "nav.label": ("Site sections", "Sections du site"),
    "nav.now": ("Now", "Maintenant"),
    "nav.planned": ("Planned", "Planifié"),
    "nav.history": ("History", "Historique"),
    "nav.partners": ("Partners", "Partenaires"),
    "now.title": ("Current state of each system", "État actuel de chaque système"),
    "now.current": ("In progress now", "En cours"),
    "now.none": ("No change or incident in progress.", "Aucun changement ni incident en cours."),
    "planned.title": ("Planned change windows", "Fenêtres de changement planifiées"),
    "planned.none": ("No approved change is planned.", "Aucun changement approuvé n'est planifié."),
    "history.title": ("History", "Historique"),
    "history.none": ("Nothing has happened yet.", "Rien ne s'est encore produit."),
    "measures.title": ("Measures", "Mesures"),
    "measures.month": ("Per month (UTC)", "Par mois (UTC)"),
    "measures.system": ("Per system", "Par système"),
    "measures.interruptions": ("Interruptions", "Interruptions"),
    "measures.downtime": ("Total downtime", "Durée totale d'interruption"),
    "measures.chart_desc": (
        "Total downtime per {what}; the table below gives the same figures.",
        "Durée totale d'interruption par {what}; le tableau ci-dessous donne les mêmes chiffres.",
    ),
    "measures.what.month": ("month", "mois"),
    "measures.what.system": ("system", "système"),
    "measures.none": ("No interruption recorded.", "Aucune interruption enregistrée."),
    "measures.rule": (
        "An interruption is an incident, a change with a declared impact, a change that was "
        "rolled back or failed, or an outage monitoring saw that no record explains; downtime "
        "runs from its start to its end.",
        "Une interruption est un incident, un changement dont l'impact déclaré n'est pas nul, "
        "un changement annulé ou en échec, ou une interruption constatée par la supervision "
        "qu'aucun dossier n'explique; sa durée va de son début à sa fin.",
    ),
    "yoy.title": (
        "Against the same period a year earlier",
        "Par rapport à la même période un an plus tôt",
    ),
    "yoy.rule": (
        "Interruptions and downtime in each period, and in the same period a year earlier: "
        "the measure the agency reports.",
        "Interruptions et durée d'interruption de chaque période, et de la même période un an "
        "plus tôt : la mesure dont l'organisme rend compte.",
    ),
    "yoy.12m": ("Last 12 months", "12 derniers mois"),
    "yoy.period": ("Period", "Période"),
    "yoy.before": ("A year earlier", "Un an plus tôt"),
    "yoy.change": ("Change", "Évolution"),
    "yoy.na": ("n/a", "s.o."),
    "yoy.sources": (
        "Counted from incidents, changes rolled back or failed, and outages monitoring saw.",
        "Compté à partir des incidents, des changements annulés ou en échec, et des "
        "interruptions constatées par la supervision.",
    ),
    "yoy.sources_records": (
        "Counted from incidents and changes rolled back or failed; outages seen by monitoring "
        "are not included, as monitoring could not be read.",
        "Compté à partir des incidents et des changements annulés ou en échec; les "
        "interruptions constatées par la supervision ne sont pas incluses, la supervision "
        "n'ayant pas pu être lue.",
    ),
    "col.monitoring": ("Monitoring", "Supervision"),
    "health.operational": ("Healthy", "Normal"),
    "health.degraded": ("Alerts or a server down", "Alertes ou un serveur arrêté"),
    "health.outage": ("No server answering", "Aucun serveur ne répond"),
    "health.unknown": ("Health unknown", "État inconnu"),
    "health.none": ("Not monitored", "Non supervisé"),
    "health.from": (
        "Each system's health is also read from monitoring, as of the time this page was made.",
        "L'état de chaque système est aussi lu dans la supervision, au moment où cette page a "
        "été produite.",
    ),
    "health.unknown_note": (
        "Health unknown: monitoring could not be reached. The states below come from change "
        "and incident records only.",
        "État inconnu : la supervision n'a pas pu être jointe. Les états ci-dessous viennent "
        "uniquement des dossiers de changements et d'incidents.",
    ),
    "kind.monitored": ("Monitoring", "Supervision"),
    "phase.monitored": ("Outage seen by monitoring", "Interruption constatée par la supervision"),
    "col.system": ("System", "Système"),
    "col.state": ("State", "État"),
    "col.ref": ("Reference", "Référence"),
    "col.what": ("What", "Objet"),
    "col.kind": ("Kind", "Type"),
    "col.when": ("When", "Quand"),
    "col.start": ("Start", "Début"),
    "col.end": ("End", "Fin"),
    "col.duration": ("Duration", "Durée"),
    "col.outcome": ("Outcome", "Résultat"),
    "col.impact": ("Impact", "Impact"),
    "col.affected": ("Systems affected", "Systèmes touchés"),
    "col.partners": ("Partners affected", "Partenaires touchés"),
    "col.month": ("Month", "Mois"),
    "kind.change": ("Change", "Changement"),
    "kind.incident": ("Incident", "Incident"),
    "state.operational": ("Operational", "Opérationnel"),
    "state.degraded": ("Degraded", "Dégradé"),
    "state.outage": ("Outage", "Panne"),
    "state.under_change": ("Under change", "Changement en cours"),
    "outcome.planned": ("Planned", "Planifié"),
    "outcome.completed": ("Completed", "Terminé"),
    "outcome.rolled_back": ("Rolled back", "Annulé et rétabli"),
    "outcome.failed": ("Failed", "Échec"),
    "outcome.in_progress": ("In progress", "En cours"),
    "outcome.open": ("Open", "En cours"),
    "outcome.resolved": ("Resolved", "Résolu"),
    "phase.planned": LABELS["scheduled"],
    "phase.started": LABELS["started"],
    "phase.completed": LABELS["completed"],
    "phase.rolled_back": LABELS["rolled_back"],
    "phase.failed": ("Change failed", "Échec du changement"),
    "phase.incident": LABELS["incident"],
    "phase.incident_resolved": LABELS["incident_resolved"],
    "ics.title": ("Calendars (.ics)", "Calendriers (.ics)"),
    "ics.all": ("All planned changes", "Tous les changements planifiés"),
    "ics.system": ("Per system", "Par système"),
    "ics.partner": ("Per partner", "Par partenaire"),
    "ics.this_partner": ("This partner's calendar", "Calendrier de ce partenaire"),
    "feed.title": ("Service notices", "Avis de service"),
    "feed.link": ("Notices feed (Atom)", "Fil des avis (Atom)"),
    "json.link": ("Machine-readable status (JSON)", "État lisible par machine (JSON)"),
    "partners.title": ("Partner pages", "Pages des partenaires"),
    "partners.intro": (
        "Each page shows only what affects that partner.",
        "Chaque page ne montre que ce qui touche ce partenaire.",
    ),
    "partner.consumes": ("Systems this partner uses", "Systèmes utilisés par ce partenaire"),
    "generated": ("Generated", "Produit le"),
    "since": ("since", "depuis"),
    "all_partners": ("All partners", "Tous les partenaires"),
    "home": ("Status home", "Accueil de l'état des services"),
}
for _level, _pair in IMPACT_LABELS.items():
    _WORDS[f"impact.{_level}"] = _pair


def text(lang: str, key: str) -> str:
    """The word for `key` in `lang`; an unknown key is a bug and fails loudly in tests."""
    en, fr = _WORDS[key]
    return en if lang == "en" else fr


def when(lang: str, moment: datetime, zone: str) -> str:
    """Local time in the event's zone, then UTC, as the notices write it."""
    return when_en(moment, zone) if lang == "en" else when_fr(moment, zone)


def change(value: int | None, lang: str) -> str:
    """A year-on-year change: `-33 %` written with a true minus sign (U+2212), `+5 %`,
    `0 %`; `n/a` for None."""
    if value is None:
        return text(lang, "yoy.na")
    sign = "\u2212" if value < 0 else "+" if value > 0 else ""
    return f"{sign}{abs(value)} %"


def duration(seconds: int, lang: str) -> str:
    """`2 d 3 h 05 min`, `1 h 05 min`, `4 min 10 s`, `12 s` (French: `j` for days)."""
    days, rest = divmod(max(0, seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} {'d' if lang == 'en' else 'j'} {hours} h {minutes:02d} min"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"
