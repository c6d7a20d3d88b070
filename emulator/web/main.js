// The playground page: pick who you are, pick a channel or your DMs, and use the bot as on Discord.
import { api, follow } from "./api.js";
import { CommandPicker } from "./commands.js";
import { showModal } from "./modal.js";
import { h, renderMessage } from "./render.js";

const $ = (id) => document.getElementById(id);
const state = {
  world: null,      // /_emulator/state
  me: null,         // id of the member acting
  view: null,       // {channelId} or {dm: true}
  messages: new Map(),  // channel id -> Map(message id -> message)
  dismissed: new Set(),
  unread: new Set(),
};

function toast(text, kind = "error") {
  const el = h("div", { class: `toast ${kind}`, role: "alert" }, text);
  $("toasts").append(el);
  setTimeout(() => el.remove(), 6000);
}

const guilds = () => state.world.guilds;
const userById = (id) => state.world.users.find((u) => u.id === id);
const dmChannelId = () => state.world.dm_channels[state.me];
const currentChannelId = () => (state.view.dm ? dmChannelId() : state.view.channelId);
const guildOf = (channelId) => guilds().find((g) => g.channels.some((c) => c.id === channelId));
const isModerator = (guild, userId) => {
  const member = guild.members.find((m) => m.user.id === userId);
  const modRoles = guild.roles.filter((r) => r.name === "Moderator").map((r) => r.id);
  return !!member && member.roles.some((r) => modRoles.includes(r));
};

const names = {
  user: (id) => { const u = userById(id); return u ? u.global_name || u.username : "unknown"; },
  channel: (id) => { for (const g of guilds()) { const c = g.channels.find((x) => x.id === id); if (c) return c.name; } return "unknown"; },
  role: (id) => { for (const g of guilds()) { const r = g.roles.find((x) => x.id === id); if (r) return r.name; } return "role"; },
  // Choices for user (5), role (6) and channel (8) selects, in the guild being looked at.
  pickable: (kind) => {
    const guild = state.view.dm ? guilds()[0] : guildOf(state.view.channelId);
    if (!guild) return [];
    if (kind === 6) return guild.roles.filter((r) => r.name !== "@everyone").map((r) => ({ value: r.id, label: r.name }));
    if (kind === 8) return guild.channels.filter((c) => c.type === 0).map((c) => ({ value: c.id, label: `#${c.name}` }));
    return guild.members.map((m) => ({ value: m.user.id, label: m.user.global_name || m.user.username }));
  },
  objectValue: (kind, id) => (kind === 6 ? { role: id } : kind === 8 ? { channel: id } : { user: id }),
};

// ---- acting -------------------------------------------------------------------------------------------

// Runs an interaction and waits for the bot's first answer; a modal opens, messages come over the feed.
async function interact(start) {
  let it;
  try {
    it = await start;
    it = await api.response(it.id);
  } catch (error) {
    toast(it ? "The application did not respond" : error.message);
    return;
  }
  if (it.response && it.response.kind === "modal") {
    const values = await showModal($("modal"), it.response.modal);
    if (values) await interact(api.submitModal(state.me, it.id, values));
  }
}

function actionsFor(msg) {
  return {
    click: (customId) => interact(api.click(state.me, msg.id, customId)),
    select: (customId, values) => interact(api.select(state.me, msg.id, customId, values)),
    react: (emoji, mine) => (mine ? api.unreact(state.me, msg.id, emoji) : api.react(state.me, msg.id, emoji))
      .catch((error) => toast(error.message)),
    dismiss: () => { state.dismissed.add(msg.id); drawMessage(msg); },
  };
}

const picker = new CommandPicker({
  input: $("input"), list: $("command-list"), form: $("command-form"),
  ctx: {
    names,
    toast,
    commands: () => api.commands(state.me, state.view.dm ? null : state.view.channelId),
    run: (name, options) => interact(api.slash(state.me, name, options, state.view.dm ? null : state.view.channelId)),
    autocomplete: (name, options, focused, typed) => api.autocomplete(state.me, name, { ...options, [focused]: typed },
      focused, state.view.dm ? null : state.view.channelId),
  },
});

$("input").addEventListener("input", () => { if ($("input").value === "/") picker.refresh().then(() => picker.suggest()); });

$("composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (picker.open) { await picker.submit(); return; }
  const text = $("input").value.trim();
  if (!text) return;
  $("input").value = "";
  try {
    if (state.view.dm) await api.dm(state.me, text);
    else await api.send(state.me, state.view.channelId, text);
  } catch (error) {
    $("input").value = text;  // nothing typed is lost
    toast(error.message);
  }
});

// ---- drawing ------------------------------------------------------------------------------------------

const visible = (msg) => !msg.deleted && !state.dismissed.has(msg.id) && (!msg.ephemeral || msg.visible_to === state.me);

function drawMessage(msg) {
  const list = $("messages");
  const old = document.getElementById(`m-${msg.id}`);
  if (!visible(msg)) { if (old) old.remove(); return; }
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  const node = renderMessage(msg, { me: state.me, names, act: actionsFor(msg) });
  if (old) old.replaceWith(node);
  else {
    const later = [...list.children].find((li) => BigInt(li.dataset.messageId) > BigInt(msg.id));
    list.insertBefore(node, later || null);
  }
  if (atBottom || !old) list.scrollTop = list.scrollHeight;
}

async function showChannel() {
  const channelId = currentChannelId();
  document.body.dataset.loading = "1";  // until the channel's messages are drawn (tests wait on it)
  $("messages").replaceChildren();
  $("channel-title").textContent = state.view.dm ? `@${names.user(state.world.bot_id)}` : `# ${names.channel(channelId)}`;
  if (channelId) {
    state.unread.delete(channelId);
    const loaded = await api.messages(channelId);
    const map = new Map(loaded.map((m) => [m.id, m]));
    for (const [id, m] of state.messages.get(channelId) || []) if (!map.has(id)) map.set(id, m);
    state.messages.set(channelId, map);
    if (channelId === currentChannelId()) for (const msg of map.values()) drawMessage(msg);
  }
  drawSidebar();
  picker.close();
  document.body.dataset.loading = "0";
  $("input").placeholder = state.view.dm ? `Message @${names.user(state.world.bot_id)}, or / for commands`
    : `Message #${names.channel(channelId)}, or / for commands`;
}

function drawSidebar() {
  if (!state.view) return;
  const guild = guilds()[0];
  $("guild-name").textContent = guild ? guild.name : "No guild";
  const channels = guilds().flatMap((g) => g.channels.filter((c) => [0, 5, 11, 12].includes(c.type)));
  $("channels").replaceChildren(...channels.map((c) => h("li", {
    class: [state.view.channelId === c.id && !state.view.dm ? "active" : "", state.unread.has(c.id) ? "unread" : ""].join(" "),
    "data-channel": c.name, onclick: () => { state.view = { channelId: c.id }; showChannel(); },
  }, c.parent_id && c.type !== 0 ? `↳ ${c.name}` : `# ${c.name}`)));
  const dm = dmChannelId();
  $("dms").replaceChildren(h("li", {
    class: [state.view.dm ? "active" : "", dm && state.unread.has(dm) ? "unread" : ""].join(" "),
    "data-channel": "dm", onclick: () => { state.view = { dm: true }; showChannel(); },
  }, `@${names.user(state.world.bot_id)}`));
  $("connection").className = state.world.connected ? "up" : "";
  $("connection").title = state.world.connected ? "the bot is connected" : "the bot is not connected";
}

function drawMembers() {
  const select = $("member");
  const guild = guilds()[0];
  const actors = state.world.actors.map(userById).filter(Boolean);
  select.replaceChildren(...actors.map((u) => h("option", { value: u.id, selected: u.id === state.me },
    `${u.global_name || u.username}${guild && isModerator(guild, u.id) ? " (moderator)" : ""}`)));
}

// ---- live updates -------------------------------------------------------------------------------------

function onLive(msg) {
  if (msg.dm_user_id && state.world.dm_channels[msg.dm_user_id] !== msg.channel_id) {
    state.world.dm_channels[msg.dm_user_id] = msg.channel_id;
    if (msg.dm_user_id === state.me) drawSidebar();
  } else if (!msg.dm_user_id && !guildOf(msg.channel_id)) {
    refreshState();  // a channel or thread the page has not seen yet
  }
  const map = state.messages.get(msg.channel_id);
  const isNew = !map || !map.has(msg.id);
  if (map) map.set(msg.id, msg);
  if (msg.channel_id === currentChannelId()) drawMessage(msg);
  else if (isNew && visible(msg) && (!msg.dm_user_id || msg.dm_user_id === state.me)) {
    state.unread.add(msg.channel_id);
    drawSidebar();
  }
}

async function refreshState() {
  const world = await api.state();
  world.bot_id = state.botId || (state.botId = (await api.info()).bot_user.id);
  const actorsChanged = !state.world || state.world.actors.join() !== world.actors.join();
  state.world = world;
  drawSidebar();
  if (actorsChanged && state.me) drawMembers();
}

async function start() {
  await refreshState();
  const params = new URLSearchParams(location.search);
  const wanted = params.get("as");
  const actors = state.world.actors.map(userById).filter(Boolean);
  const chosen = actors.find((u) => u.username === wanted) || actors.find((u) => u.id === localStorage.getItem("me"));
  state.me = (chosen || actors[0] || {}).id || null;
  const channels = guilds().flatMap((g) => g.channels.filter((c) => c.type === 0));
  const channel = channels.find((c) => c.name === params.get("channel")) || channels[0];
  state.view = params.get("channel") === "dm" || !channel ? { dm: true } : { channelId: channel.id };
  drawMembers();
  $("member").addEventListener("change", () => {
    state.me = $("member").value;
    localStorage.setItem("me", state.me);
    showChannel();
  });
  follow(onLive, (up) => { document.body.dataset.live = up ? "up" : "down"; });
  await showChannel();
  setInterval(() => refreshState().catch(() => {}), 3000);
}

start().catch((error) => toast(`The playground could not start: ${error.message}`));
