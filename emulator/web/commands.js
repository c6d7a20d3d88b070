// Slash commands: "/" lists the commands the member is offered here, choosing one opens a form of its
// options (choices, autocomplete, members, channels, roles, files), and sending runs it.
import { h } from "./render.js";

const SUB_COMMAND = 1, GROUP = 2, STRING = 3, INTEGER = 4, BOOLEAN = 5, USER = 6, CHANNEL = 7, ROLE = 8,
  MENTIONABLE = 9, NUMBER = 10, ATTACHMENT = 11;

// "admin stats" for subcommand stats of /admin, with the options of the leaf.
function flatten(commands) {
  const entries = [];
  const walk = (path, description, options) => {
    const subs = (options || []).filter((o) => o.type === SUB_COMMAND || o.type === GROUP);
    if (subs.length === 0) entries.push({ name: path, description, options: options || [] });
    for (const sub of subs) walk(`${path} ${sub.name}`, sub.description, sub.options);
  };
  for (const cmd of commands) walk(cmd.name, cmd.description, cmd.options);
  return entries.sort((a, b) => a.name.localeCompare(b.name));
}

const readBase64 = (file) => new Promise((resolve, reject) => {
  const reader = new FileReader();
  reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
  reader.onerror = () => reject(reader.error);
  reader.readAsDataURL(file);
});

export class CommandPicker {
  constructor({ input, list, form, ctx }) {
    Object.assign(this, { input, list, form, ctx, entries: [], active: null, selected: 0 });
    input.addEventListener("input", () => this.suggest());
    input.addEventListener("keydown", (event) => this.key(event));
  }

  async refresh() {
    this.entries = flatten(await this.ctx.commands());
  }

  get open() { return this.active !== null; }

  suggest() {
    const text = this.input.value;
    if (this.active || !text.startsWith("/")) { this.list.hidden = true; return; }
    const typed = text.slice(1).toLowerCase();
    this.matches = this.entries.filter((e) => e.name.startsWith(typed));
    this.selected = Math.min(this.selected, Math.max(this.matches.length - 1, 0));
    this.list.replaceChildren(...this.matches.map((entry, i) => h("li", {
      class: i === this.selected ? "selected" : null, "data-command": entry.name,
      onmousedown: (event) => { event.preventDefault(); this.choose(entry); },
    }, `/${entry.name}`, h("span", { class: "desc" }, entry.description))));
    this.list.hidden = this.matches.length === 0;
  }

  key(event) {
    if (this.list.hidden) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      this.selected = (this.selected + step + this.matches.length) % this.matches.length;
      this.suggest();
    } else if (event.key === "Enter" || event.key === "Tab") {
      event.preventDefault();
      this.choose(this.matches[this.selected]);
    } else if (event.key === "Escape") {
      this.list.hidden = true;
    }
  }

  choose(entry) {
    this.active = entry;
    this.list.hidden = true;
    this.input.value = `/${entry.name}`;
    this.input.readOnly = true;
    const fields = entry.options.map((option) => this.field(option));
    this.form.replaceChildren(
      h("div", { class: "name" }, `/${entry.name}`, h("span", { class: "subtext" }, `  ${entry.description}`)),
      ...fields,
      h("button", { type: "submit", "data-testid": "run-command" }, "Send"),
      h("button", { type: "button", class: "cancel", onclick: () => this.close() }, "Cancel"));
    this.form.hidden = false;
    const first = this.form.querySelector("input, select");
    (first || this.input).focus();
  }

  field(option) {
    const name = `opt-${option.name}`;
    const title = `${option.name}${option.required ? " *" : ""}`;
    let control;
    if (option.choices) {
      control = h("select", { name }, h("option", { value: "" }, "—"),
        option.choices.map((c) => h("option", { value: JSON.stringify(c.value) }, c.name)));
    } else if (option.type === BOOLEAN) {
      control = h("select", { name }, h("option", { value: "" }, "—"),
        h("option", { value: "true" }, "True"), h("option", { value: "false" }, "False"));
    } else if ([USER, MENTIONABLE, CHANNEL, ROLE].includes(option.type)) {
      const kind = { [USER]: 5, [MENTIONABLE]: 5, [ROLE]: 6, [CHANNEL]: 8 }[option.type];
      control = h("select", { name }, h("option", { value: "" }, "—"),
        this.ctx.names.pickable(kind).map((o) => h("option", { value: o.value }, o.label)));
    } else if (option.type === ATTACHMENT) {
      control = h("input", { name, type: "file" });
    } else {
      const numeric = option.type === INTEGER || option.type === NUMBER;
      control = h("input", { name, type: numeric ? "number" : "text", step: option.type === NUMBER ? "any" : null,
        min: option.min_value, max: option.max_value, minlength: option.min_length, maxlength: option.max_length,
        placeholder: option.description });
      if (option.autocomplete) this.autocomplete(control, option);
    }
    return h("label", { title: option.description }, title, control);
  }

  autocomplete(control, option) {
    const list = h("datalist", { id: `choices-${option.name}` });
    control.setAttribute("list", list.id);
    control.after(list);
    let timer = null;
    const ask = async () => {
      try {
        const it = await this.ctx.autocomplete(this.active.name, this.values(option.name), option.name, control.value);
        const choices = (it.response && it.response.choices) || [];
        list.replaceChildren(...choices.map((c) => h("option", { value: c.value }, c.name)));
      } catch (error) {
        this.ctx.toast(error.message);
      }
    };
    control.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(ask, 250); });
    control.addEventListener("focus", ask, { once: true });
    queueMicrotask(() => control.parentElement.append(list));
  }

  // Filled-in options as the control API takes them (no attachments: those are read at submit).
  values(except) {
    const out = {};
    for (const option of this.active.options) {
      const el = this.form.querySelector(`[name="opt-${option.name}"]`);
      if (!el || option.name === except || option.type === ATTACHMENT || el.value === "") continue;
      out[option.name] = this.parse(option, el.value);
    }
    return out;
  }

  parse(option, raw) {
    if (option.choices) return JSON.parse(raw);
    if (option.type === BOOLEAN) return raw === "true";
    if (option.type === INTEGER) return parseInt(raw, 10);
    if (option.type === NUMBER) return parseFloat(raw);
    if (option.type === USER || option.type === MENTIONABLE) return { user: raw };
    if (option.type === CHANNEL) return { channel: raw };
    if (option.type === ROLE) return { role: raw };
    return raw;
  }

  async submit() {
    const options = this.values(null);
    for (const option of this.active.options.filter((o) => o.type === ATTACHMENT)) {
      const file = this.form.querySelector(`[name="opt-${option.name}"]`).files[0];
      if (file) options[option.name] = { attachment: { filename: file.name, data_base64: await readBase64(file) } };
    }
    const name = this.active.name;
    this.close();
    await this.ctx.run(name, options);
  }

  close() {
    this.active = null;
    this.form.hidden = true;
    this.form.replaceChildren();
    this.list.hidden = true;
    this.input.readOnly = false;
    this.input.value = "";
  }
}
