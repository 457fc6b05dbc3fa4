// The live page of a raftmq cluster (docs/observability.md). It asks only the node that
// served it: /ui/cluster for every member's status (polled), /ui/events (every member's
// events, merged by the node) as server-sent events for the timeline, /topic and /message for writes, and on a `raftmq dev` cluster
// /ui/dev/... for process controls and the simulated partition. Each member's card carries
// data-node-id, data-role, data-term, data-commit-index and (dev) data-isolated: tests and
// tools read them.
"use strict";

const POLL_MS = 400;
const lastSeen = new Map();   // member id -> Date.now() of its last answer
const commits = [];           // [time ms, leader commit index], the last minute
let dev = false;
let devNodes = new Map();     // member id -> dev's record of it (state, isolated), dev only

const el = (tag, attrs = {}, text) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
};

// Terms get distinct, stable colours.
const termColour = (term) => `hsl(${(term * 67) % 360} 65% 50%)`;

const act = (id, action) => fetch(`/ui/dev/nodes/${id}/${action}`, { method: "POST" })
  .then((r) => r.json()).then((j) => { if (j.error) alert(j.error); });

function card(m, leader) {
  const role = m.up ? m.role : "Down";
  const isolated = devNodes.get(m.id)?.isolated === true;
  const c = el("div", {
    class: "member", "data-node-id": m.id, "data-role": role,
    "data-term": m.up ? m.term : "", "data-commit-index": m.up ? m.commit_index : "",
    "data-isolated": isolated,
  });
  c.append(el("h3", {}, `node ${m.id} · ${m.up ? m.role : "down"}${m.id === leader?.id ? " ★" : ""}`));
  if (isolated) c.append(el("p", { class: "isolated" }, "isolated (simulated)"));
  const dl = el("dl");
  const row = (k, v) => { dl.append(el("dt", {}, k), el("dd", {}, v)); };
  const since = lastSeen.has(m.id) ? `${((Date.now() - lastSeen.get(m.id)) / 1000).toFixed(1)} s ago` : "never";
  if (m.up) {
    row("term", m.term); row("commit", m.commit_index); row("applied", m.applied_index);
    row("last log index", m.last_index);
    row("lag", leader ? Math.max(0, leader.last_index - m.last_index) : "?");
  }
  row("last contact", m.up ? "now" : since);
  c.append(dl);
  if (dev) {
    const group = (title, actions) => {
      const controls = el("div", { class: "controls" });
      controls.append(el("span", { class: "note" }, title));
      for (const [action, label] of actions) {
        const b = el("button", { "data-action": action }, label);
        b.onclick = () => act(m.id, action);
        controls.append(b);
      }
      return controls;
    };
    c.append(group("process:", [["kill", "kill -9"], ["restart", "restart"], ["stop", "pause"], ["cont", "resume"]]));
    c.append(group("network (simulated):", isolated ? [["heal", "heal"]] : [["isolate", "isolate"]]));
  }
  return c;
}

function strips(members, terms) {
  const termAt = new Map(terms.map(([i, t]) => [i, t]));
  const top = Math.max(0, ...members.filter((m) => m.up).map((m) => m.last_index));
  const from = Math.max(1, top - 47);
  const box = document.getElementById("logs");
  box.replaceChildren();
  for (const m of members) {
    const s = el("div", { class: "strip", "data-node-id": m.id });
    s.append(el("span", { class: "label" }, `node ${m.id}`));
    for (let i = from; i <= top; i++) {
      const cell = el("span", { class: "cell", title: `index ${i}` });
      if (!m.up || i > m.last_index) {
        cell.classList.add("empty");
      } else {
        const term = termAt.get(i) ?? m.term;
        cell.style.background = termColour(term);
        cell.title += `, term ${term}`;
        if (i > m.commit_index) cell.classList.add("uncommitted");
      }
      if (m.up && i === m.commit_index) cell.classList.add("commit");
      s.append(cell);
    }
    box.append(s);
  }
}

function throughput(leader) {
  const now = Date.now();
  if (leader) commits.push([now, leader.commit_index]);
  while (commits.length && commits[0][0] < now - 60000) commits.shift();
  const svg = document.getElementById("throughput");
  const rates = [];
  for (let i = 1; i < commits.length; i++) {
    const dt = (commits[i][0] - commits[i - 1][0]) / 1000;
    rates.push([commits[i][0], dt > 0 ? Math.max(0, commits[i][1] - commits[i - 1][1]) / dt : 0]);
  }
  const max = Math.max(1, ...rates.map((r) => r[1]));
  const points = rates.map(([t, r]) => `${300 - (now - t) / 200},${60 - (r / max) * 56}`).join(" ");
  svg.innerHTML = `<polyline fill="none" stroke="#36c" stroke-width="1.5" points="${points}"/>` +
    `<text x="4" y="12" font-size="10">${Math.round(max)}/s peak</text>`;
}

async function poll() {
  try {
    const r = await fetch("/ui/cluster", { cache: "no-store" });
    const c = await r.json();
    dev = c.dev;
    if (dev) {
      const d = await fetch("/ui/dev/nodes", { cache: "no-store" }).then((r) => r.json()).catch(() => ({}));
      devNodes = new Map((d.nodes ?? []).map((n) => [n.id, n]));
    }
    document.getElementById("served-by").textContent = `· served by node ${c.served_by}`;
    document.getElementById("controls-note").textContent = dev
      ? "raftmq dev cluster: kill -9, restart and pause/resume act on real processes (SIGKILL, " +
        "a new process, SIGSTOP/SIGCONT). Isolate and heal simulate the network: no firewall is " +
        "touched; the nodes themselves drop all traffic between the isolated member and its peers, " +
        "while its own page and API stay up. A restart ends isolation."
      : "A cluster of plain raftmq nodes: this page watches; it controls no process.";
    for (const m of c.members) if (m.up) lastSeen.set(m.id, Date.now());
    const up = c.members.filter((m) => m.up);
    // An isolated old leader may still believe it leads: the leader of the highest term wins.
    const leader = up.filter((m) => m.role === "Leader").sort((a, b) => b.term - a.term)[0];
    const line = document.getElementById("leader");
    line.textContent = leader
      ? `Leader: node ${leader.id} (term ${leader.term})`
      : "No leader: an election is under way or there is no quorum";
    line.dataset.leader = leader ? leader.id : "";
    document.getElementById("members").replaceChildren(...c.members.map((m) => card(m, leader)));
    strips(c.members, c.log_terms);
    throughput(leader);
  } catch (e) {
    document.getElementById("leader").textContent = `This node does not answer (${e.message})`;
  }
  setTimeout(poll, POLL_MS);
}

// Each entry carries data-node (the member it happened on), data-kind and data-time; the list
// is kept newest first by the time the member recorded it, whatever order the streams arrive in.
function timeline() {
  const list = document.getElementById("timeline");
  const events = new EventSource("/ui/events?limit=50");
  events.onmessage = (msg) => {
    const e = JSON.parse(msg.data);
    const t = new Date(e.time_ms).toLocaleTimeString();
    const li = el("li", { "data-kind": e.kind, "data-node": e.node, "data-time": e.time_ms });
    li.append(el("span", {}, `${t} `), el("span", { class: "kind" }, e.kind),
      el("span", { class: "node" }, `node ${e.node}: `), el("span", {}, e.text));
    const later = [...list.children].find((c) => Number(c.dataset.time) <= e.time_ms);
    list.insertBefore(li, later ?? null);
    while (list.children.length > 200) list.lastChild.remove();
  };
}

document.getElementById("write").onsubmit = async (ev) => {
  ev.preventDefault();
  const topic = document.getElementById("topic").value;
  const message = document.getElementById("message").value;
  const out = document.getElementById("write-result");
  const put = (path, body) => fetch(path, {
    method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  });
  await put("/topic", { topic });   // already there is fine
  const r = await put("/message", { topic, message });
  out.textContent = r.ok ? `put on ${topic}: watch the strips replicate it` : `refused: ${r.status} ${await r.text()}`;
};

timeline();
poll();
