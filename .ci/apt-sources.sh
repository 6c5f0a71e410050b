# shellcheck shell=bash
# Derive the bookworm-backports apt source from the machine's own apt configuration, so the repository never
# names a mirror: the entry that serves `bookworm` with component `main` gives the URI and Signed-By that
# the backports entry reuses. Reads deb822 (*.sources) and one-line (sources.list, *.list) files.
# Tested by test/unit/ci/apt-sources.test.ts on sample files.
#
#   apt_source_files ROOT        the files apt reads under ROOT ('' for this machine)
#   has_backports ROOT           succeeds when an enabled entry already serves bookworm-backports
#   backports_source ROOT        prints a deb822 stanza for bookworm-backports; fails if no bookworm main entry
#   packages_ready PKG...        succeeds when every package is installed (dpkg)

packages_ready() {
  local p
  for p in "$@"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = 'install ok installed' ] || return 1
  done
}

apt_source_files() {
  local root=$1 f
  [ -f "$root/etc/apt/sources.list" ] && printf '%s\n' "$root/etc/apt/sources.list"
  for f in "$root"/etc/apt/sources.list.d/*.list "$root"/etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && printf '%s\n' "$f"
  done
  return 0
}

# Prints one line per enabled `deb` entry and suite: "SUITE<TAB>URI<TAB>COMPONENTS<TAB>SIGNED-BY", where a
# multi-line Signed-By (an inline key) keeps its lines joined by \n escapes.
_apt_entries() {
  local f
  while IFS= read -r f; do
    case "$f" in
      *.sources) _apt_deb822 < "$f" ;;
      *) _apt_oneline < "$f" ;;
    esac
  done < <(apt_source_files "$1")
}

_apt_deb822() {
  awk '
    function flush(   n, i, s, t, ok) {
      ok = 0
      n = split(types, t, /[ \t]+/)
      for (i = 1; i <= n; i++) if (t[i] == "deb") ok = 1
      if (ok && tolower(enabled) != "no" && uris != "") {
        split(uris, u, /[ \t]+/)
        n = split(suites, s, /[ \t]+/)
        for (i = 1; i <= n; i++) if (s[i] != "") printf "%s\t%s\t%s\t%s\n", s[i], u[1], comps, signed
      }
      types = ""; uris = ""; suites = ""; comps = ""; signed = ""; enabled = ""; key = ""
    }
    function trim(x) { sub(/^[ \t]+/, "", x); sub(/[ \t\r]+$/, "", x); return x }
    /^#/ { next }
    /^[ \t]*$/ { flush(); next }
    /^[ \t]/ { if (key == "signed-by") signed = signed "\\n" trim($0)
               if (key == "uris") uris = uris " " trim($0); if (key == "suites") suites = suites " " trim($0); if (key == "components") comps = comps " " trim($0)
               next }
    {
      i = index($0, ":"); if (i == 0) next
      key = tolower(trim(substr($0, 1, i - 1))); v = trim(substr($0, i + 1))
      if (key == "types") types = v; else if (key == "uris") uris = v; else if (key == "suites") suites = v
      else if (key == "components") comps = v; else if (key == "signed-by") signed = v; else if (key == "enabled") enabled = v
    }
    END { flush() }
  '
}

_apt_oneline() {
  awk '
    /^[ \t]*#/ || /^[ \t]*$/ { next }
    {
      sub(/#.*/, "")
      if ($1 != "deb") next
      i = 2; signed = ""
      if (substr($2, 1, 1) == "[") {
        # options: [a=b c=d], possibly with spaces inside the brackets
        opts = ""
        for (; i <= NF; i++) { opts = opts " " $i; if ($i ~ /\]$/) { i++; break } }
        gsub(/[\[\]]/, "", opts)
        n = split(opts, o, /[ \t]+/)
        for (j = 1; j <= n; j++) if (o[j] ~ /^signed-by=/) signed = substr(o[j], 11)
      }
      uri = $i; suite = $(i + 1); comps = ""
      for (k = i + 2; k <= NF; k++) comps = comps (comps == "" ? "" : " ") $k
      if (uri != "" && suite != "") printf "%s\t%s\t%s\t%s\n", suite, uri, comps, signed
    }
  '
}

has_backports() {
  _apt_entries "$1" | awk -F '\t' '$1 == "bookworm-backports" { found = 1 } END { exit found ? 0 : 1 }'
}

backports_source() {
  local line uri signed
  line=$(_apt_entries "$1" | awk -F '\t' '!found && $1 == "bookworm" && (" " $3 " ") ~ / main / { print; found = 1 }')
  [ -n "$line" ] || return 1
  uri=$(printf '%s' "$line" | cut -f2)
  signed=$(printf '%s' "$line" | cut -f4)
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\n' "$uri"
  # An inline key keeps its continuation lines (each indented by one space, as deb822 wants).
  [ -n "$signed" ] && printf 'Signed-By: %s\n' "$(printf '%s' "$signed" | sed 's/\\n/\n /g')"
  return 0
}
