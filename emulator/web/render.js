// Messages as Discord's client draws them: markdown, embeds, attachments, components, reactions.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "html") el.innerHTML = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) el.append(child);
  }
  return el;
}

const escapeHtml = (text) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

function relative(seconds) {
  const delta = seconds - Date.now() / 1000;
  const units = [["year", 31536000], ["month", 2592000], ["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  const [unit, size] = units.find(([, s]) => Math.abs(delta) >= s) || units[units.length - 1];
  return new Intl.RelativeTimeFormat("en", { numeric: "auto" }).format(Math.round(delta / size), unit);
}

// Discord's markdown, the parts bots use: code, bold, italics, strike, links, mentions, timestamps,
// headings, subtext and quotes.
export function markdown(text, names) {
  const blocks = [];
  let out = escapeHtml(text || "").replace(/```(?:\w+\n)?([\s\S]*?)```/g, (_, code) => {
    blocks.push(`<pre>${code}</pre>`);
    return `\u0000${blocks.length - 1}\u0000`;
  });
  out = out
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\*\*(.+?)\*\*/g, "<strong>$1</strong>")
    .replace(/__(.+?)__/g, "<u>$1</u>")
    .replace(/(^|[^*])\*([^*\n]+)\*/g, "$1<em>$2</em>")
    .replace(/(^|\W)_([^_\n]+)_(?=\W|$)/g, "$1<em>$2</em>")
    .replace(/~~(.+?)~~/g, "<s>$1</s>")
    .replace(/\[([^\]]+)\]\((https?:[^)\s]+)\)/g, '<a href="$2" target="_blank" rel="noreferrer">$1</a>')
    .replace(/&lt;@!?(\d+)&gt;/g, (_, id) => `<span class="mention">@${escapeHtml(names.user(id))}</span>`)
    .replace(/&lt;#(\d+)&gt;/g, (_, id) => `<span class="mention">#${escapeHtml(names.channel(id))}</span>`)
    .replace(/&lt;@&amp;(\d+)&gt;/g, (_, id) => `<span class="mention">@${escapeHtml(names.role(id))}</span>`)
    .replace(/&lt;t:(-?\d+)(?::([tTdDfFR]))?&gt;/g, (_, s, style) =>
      `<time>${style === "R" ? relative(Number(s)) : new Date(Number(s) * 1000).toLocaleString()}</time>`)
    .replace(/^### (.*)$/gm, "<strong>$1</strong>")
    .replace(/^## (.*)$/gm, '<strong style="font-size:1.15em">$1</strong>')
    .replace(/^# (.*)$/gm, '<strong style="font-size:1.3em">$1</strong>')
    .replace(/^-# (.*)$/gm, '<span class="subtext">$1</span>')
    .replace(/^&gt; (.*)$/gm, "<blockquote>$1</blockquote>");
  return out.replace(/\u0000(\d+)\u0000/g, (_, i) => blocks[Number(i)]);
}

function attachmentUrl(url, msg) {
  if (url && url.startsWith("attachment://")) {
    const name = url.slice("attachment://".length);
    return (msg.attachments.find((a) => a.filename === name) || {}).url;
  }
  return url;
}

function embed(e, msg, names) {
  const color = e.color !== undefined && e.color !== null ? `#${e.color.toString(16).padStart(6, "0")}` : null;
  const image = e.image && attachmentUrl(e.image.url, msg);
  return h("div", { class: "embed", style: color ? `border-left-color:${color}` : null, "data-testid": "embed" },
    e.author && h("div", { class: "subtext" }, e.author.name),
    e.title && h("div", { class: "title", html: markdown(e.title, names) }),
    e.description && h("div", { class: "content", html: markdown(e.description, names) }),
    e.fields && e.fields.length > 0 && h("div", { class: "fields" }, e.fields.map((f) =>
      h("div", { class: f.inline ? "field inline" : "field" },
        h("div", { class: "name", html: markdown(f.name, names) }),
        h("div", { class: "content", html: markdown(f.value, names) })))),
    image && h("img", { src: image, alt: e.title || "image" }),
    e.footer && h("div", { class: "footer" }, e.footer.text));
}

function button(c, act) {
  const label = [c.emoji ? c.emoji.name : "", c.label || ""].join(" ").trim();
  if (c.style === 5) return h("a", { class: "style-5", href: c.url, target: "_blank", rel: "noreferrer" }, label);
  return h("button", {
    type: "button", class: `style-${c.style || 2}`, disabled: !!c.disabled, "data-custom-id": c.custom_id,
    "aria-label": c.label || (c.emoji && c.emoji.name),
    onclick: () => act.click(c.custom_id),
  }, label);
}

// Discord's dropdowns, as native selects: one pick sends at once; several are sent with the button.
function select(c, act, names) {
  const multiple = (c.max_values || 1) > 1;
  const choices = c.type === 3
    ? c.options.map((o) => ({ value: o.value, label: o.label, description: o.description, chosen: !!o.default }))
    : names.pickable(c.type);
  const none = !choices.some((o) => o.chosen);
  const el = h("select", { "data-custom-id": c.custom_id, multiple, disabled: !!c.disabled, size: multiple ? Math.min(choices.length, 6) : null },
    multiple ? null : h("option", { value: "", selected: none, disabled: true }, c.placeholder || "Make a selection"),
    choices.map((o) => h("option", { value: o.value, title: o.description || null, selected: o.chosen }, o.label)));
  const values = () => [...el.selectedOptions].map((o) => (c.type === 3 ? o.value : names.objectValue(c.type, o.value)));
  if (!multiple) {
    el.addEventListener("change", () => act.select(c.custom_id, values()));
    return el;
  }
  return h("span", {}, el, h("button", { type: "button", class: "style-1", onclick: () => act.select(c.custom_id, values()) },
    "Apply"));
}

function components(list, act, names) {
  return list.map((row) => {
    if (row.type !== 1) return row.type === 10 ? h("div", { class: "content", html: markdown(row.content, names) }) : null;
    return h("div", { class: "row" }, row.components.map((c) => (c.type === 2 ? button(c, act) : select(c, act, names))));
  });
}

const PALETTE = ["👍", "👎", "⭐", "❤️", "😂", "🎉", "✅", "❌", "🚩"];

function reactions(msg, me, act) {
  const users = msg.reaction_users || {};
  const chips = Object.entries(users).map(([key, who]) => {
    const mine = who.includes(me);
    const label = key.includes(":") ? `:${key.split(":")[0]}:` : key;
    return h("button", { type: "button", class: mine ? "mine" : null, "data-emoji": key,
      title: mine ? "Remove your reaction" : "React", onclick: () => act.react(key, mine) }, `${label} ${who.length}`);
  });
  const palette = h("span", { class: "palette", hidden: true },
    PALETTE.map((emoji) => h("button", { type: "button", "data-add-emoji": emoji,
      onclick: () => { palette.hidden = true; act.react(emoji, (users[emoji] || []).includes(me)); } }, emoji)));
  const add = h("button", { type: "button", class: "add", title: "Add a reaction", "data-testid": "add-reaction",
    onclick: () => { palette.hidden = !palette.hidden; } }, "+🙂");
  return h("div", { class: "reactions" }, chips, add, palette);
}

export function renderMessage(msg, { me, names, act }) {
  const bot = msg.author.bot;
  const name = msg.author.global_name || msg.author.username;
  const meta = msg.interaction_metadata;
  const when = new Date(msg.timestamp);
  const content = msg.loading ? h("div", { class: "loading" }, `${name} is thinking…`)
    : msg.content && h("div", { class: "content", html: markdown(msg.content, names) });
  return h("li", {
    class: msg.ephemeral ? "message ephemeral" : "message", id: `m-${msg.id}`, "data-message-id": msg.id,
    "data-author": msg.author.username, "data-revisions": msg.revisions,
    "data-answers": meta && meta.user ? meta.user.id : null,
  },
  h("div", { class: "avatar", style: bot ? "background:#23a55a" : null }, name.slice(0, 1).toUpperCase()),
  h("div", { class: "body" },
    meta && meta.user && h("div", { class: "context" },
      `↱ ${meta.user.global_name || meta.user.username} used ${meta.name ? "/" + meta.name : "a component"}`),
    h("div", { class: "meta" },
      h("span", { class: "author" }, name, bot ? h("span", { class: "tag" }, "APP") : null),
      h("span", { class: "time" }, when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })),
      msg.edited_timestamp && h("span", { class: "edited" }, "(edited)")),
    content,
    msg.embeds.map((e) => embed(e, msg, names)),
    msg.attachments.filter((a) => !msg.embeds.some((e) => e.image && e.image.url === `attachment://${a.filename}`))
      .map((a) => h("div", { class: "attachment" }, (a.content_type || "").startsWith("image/")
        ? h("img", { src: a.url, alt: a.filename }) : h("a", { href: a.url, download: a.filename }, `📎 ${a.filename}`))),
    components(msg.components || [], act, names),
    !msg.ephemeral && reactions(msg, me, act),
    msg.ephemeral && h("div", { class: "ephemeral-note" }, "Only you can see this · ",
      h("button", { type: "button", onclick: () => act.dismiss() }, "Dismiss message"))));
}
