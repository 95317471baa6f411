// regaudit HTML report: filters as progressive enhancement (the page is complete without this script).
// State lives in the URL fragment (#arch=x86&subsystem=perf&member=cs&producer=...&q=text) so a filtered
// view can be linked; #fp=FINGERPRINT opens that finding. <html data-shown="N"> tells tests and tools how
// many entries are visible.
(function () {
  "use strict";
  const KEYS = ["arch", "subsystem", "member", "producer"];
  const facets = JSON.parse(document.getElementById("facets").textContent);
  const entries = Array.from(document.querySelectorAll("details.entry"));
  const texts = entries.map(function (entry) { return entry.textContent.toLowerCase(); });
  const bar = document.getElementById("filters");
  const controls = {};

  function element(tag, props, children) {
    const node = Object.assign(document.createElement(tag), props || {});
    (children || []).forEach(function (child) { node.append(child); });
    return node;
  }

  function buildControls() {
    KEYS.forEach(function (key) {
      const select = element("select", { name: key });
      select.append(element("option", { value: "", textContent: "all" }));
      facets[key].forEach(function (value) { select.append(element("option", { value: value, textContent: value })); });
      select.addEventListener("change", write);
      controls[key] = select;
      bar.append(element("label", {}, [key + " ", select]));
    });
    controls.q = element("input", { type: "search", name: "q", placeholder: "search functions, files, members" });
    controls.q.addEventListener("input", write);
    const clear = element("button", { type: "button", textContent: "clear" });
    clear.addEventListener("click", function () { Object.values(controls).forEach(function (c) { c.value = ""; }); write(); });
    const expand = element("button", { type: "button", textContent: "open all" });
    expand.addEventListener("click", function () { visible().forEach(function (e) { e.open = true; }); });
    bar.append(controls.q, clear, expand);
    bar.hidden = false;
  }

  function filters() {
    const out = {};
    Object.keys(controls).forEach(function (key) { if (controls[key].value) out[key] = controls[key].value; });
    return out;
  }

  // An entry shows when it matches the subsystem and text and one of its rows (arch + producer) the rest.
  function rowMatches(row, f) {
    return (!f.arch || row.dataset.arch === f.arch) &&
      (!f.producer || row.dataset.producer === f.producer) &&
      (!f.member || JSON.parse(row.dataset.members).indexOf(f.member) >= 0);
  }

  function matches(entry, index, f) {
    let rows = 0;
    entry.querySelectorAll("tr[data-arch]").forEach(function (row) {
      row.hidden = !rowMatches(row, f);
      rows += row.hidden ? 0 : 1;
    });
    return rows > 0 && (!f.subsystem || entry.dataset.subsystem === f.subsystem) &&
      (!f.q || texts[index].indexOf(f.q.toLowerCase()) >= 0);
  }

  function visible() { return entries.filter(function (e) { return !e.hidden; }); }

  function apply() {
    const f = filters();
    entries.forEach(function (entry, index) { entry.hidden = !matches(entry, index, f); });
    document.querySelectorAll(".consumer, section.subsystem").forEach(function (group) {
      group.hidden = !group.querySelector("details.entry:not([hidden])");
    });
    document.querySelectorAll("a.cell").forEach(function (cell) {
      cell.classList.toggle("active", cell.dataset.arch === f.arch && cell.dataset.subsystem === f.subsystem);
    });
    const shown = visible().length;
    document.documentElement.dataset.shown = String(shown);
    document.getElementById("shown").textContent = shown + " of " + entries.length + " entries shown";
  }

  function write() {
    const params = new URLSearchParams(filters());
    history.replaceState(null, "", "#" + params.toString());
    apply();
  }

  // Only a fragment of filters (it has "=") is read: "#x12" is a link to an excerpt and leaves them alone.
  function read() {
    const hash = location.hash.slice(1);
    if (hash.indexOf("=") < 0) return false;
    const params = new URLSearchParams(hash);
    Object.keys(controls).forEach(function (key) {
      const value = params.get(key) || "";
      if (value && controls[key].tagName === "SELECT" && !Array.from(controls[key].options).some(function (o) { return o.value === value; })) {
        controls[key].append(element("option", { value: value, textContent: value }));
      }
      controls[key].value = value;
    });
    apply();
    openFinding(params.get("fp"));
    return true;
  }

  function openFinding(fingerprint) {
    const row = fingerprint && Array.from(document.querySelectorAll("tr[data-fingerprints]")).find(function (r) {
      return r.dataset.fingerprints.split(" ").indexOf(fingerprint) >= 0;
    });
    const entry = row && row.closest("details.entry");
    if (!entry) return;
    entry.open = true;
    inlineExcerpts(entry);
    entry.scrollIntoView({ block: "nearest" });
  }

  // Opening a finding copies each hop's shared excerpt under the hop.
  function inlineExcerpts(entry) {
    if (!entry.open || entry.dataset.inlined) return;
    entry.dataset.inlined = "1";
    entry.querySelectorAll("ol.path > li > a").forEach(function (link) {
      const excerpt = document.getElementById(link.getAttribute("href").slice(1));
      const pre = excerpt && excerpt.querySelector("pre");
      if (pre) link.parentNode.append(pre.cloneNode(true));
    });
  }

  buildControls();
  entries.forEach(function (entry) { entry.addEventListener("toggle", function () { inlineExcerpts(entry); }); });
  window.addEventListener("hashchange", function () {
    if (read()) document.getElementById("findings").scrollIntoView();
  });
  if (!read()) apply();
})();
