// livehub i18n: English and Simplified Chinese dictionaries, language choice,
// and helpers that translate the page without ever parsing HTML.
//
// Markup hooks (re-applied on every language switch):
//   data-i18n="key"              -> element.textContent
//   data-i18n-vars='{"n": 3}'    -> variables for the key above
//   data-i18n-placeholder="key"  -> placeholder attribute
//   data-i18n-title="key"        -> title and aria-label attributes
//   data-i18n-attr="attr:key;..." -> any other attributes (e.g. data-empty:chat.empty)

const STORAGE_KEY = 'livehub.lang';
export const LANGS = ['en', 'zh-CN'];

const DICT = {
  en: {
    'lang.other': '中文',
    'lang.switch': 'Switch language',
    'app.name': 'livehub',
    'app.tagline': 'Self-hosted live streaming with chat and danmaku.',

    'index.title': 'livehub',
    'index.about': 'livehub is a self-hosted live-streaming interaction server: viewers watch the stream, chat, send flying comments (danmaku) and likes, while hosts and moderators keep the room friendly.',
    'index.point1': 'Runs on your own server: no third-party services, no trackers.',
    'index.point2': 'Danmaku over the video and a chat panel, on phones and desktops.',
    'index.point3': 'Moderation tools: delete, mute, ban, word rules, slow mode, review queue.',
    'index.go.label': 'Room id',
    'index.go.placeholder': 'e.g. demo',
    'index.go.submit': 'Watch',
    'index.go.invalid': 'Enter a room id.',

    'role.host': 'Host',
    'role.moderator': 'Mod',
    'role.viewer': 'Viewer',

    'conn.idle': 'Not connected',
    'conn.connecting': 'Connecting…',
    'conn.connected': 'Connected',
    'conn.reconnecting': 'Reconnecting…',
    'conn.reconnecting_n': 'Reconnecting (try {n})…',
    'conn.disconnected': 'Disconnected',
    'conn.refused': 'Not admitted',

    'live.on': 'LIVE',
    'live.paused': 'Paused, reconnecting…',
    'live.off': 'Offline',
    'live.closed': 'Ended',

    'stage.waiting': 'Waiting for the host…',
    'stage.danmaku_toggle': 'Danmaku on/off',
    'stage.danmaku': 'Danmaku',

    'watch.viewers': 'Viewers',
    'watch.likes': 'Likes',
    'watch.like': 'Like',
    'watch.not_shown': '{n} not shown',
    'watch.not_shown_title': 'Messages sampled away because the room is very busy',
    'watch.chat': 'Chat',
    'watch.slow_mode': 'Slow mode: {s} s',
    'watch.paused': 'Chat paused',

    'chat.placeholder': 'Say something…',
    'chat.placeholder_paused': 'Chat is paused',
    'chat.send': 'Send',
    'chat.mode': 'Mode',
    'chat.mode.scroll': 'Scroll',
    'chat.mode.top': 'Top',
    'chat.mode.bottom': 'Bottom',
    'chat.color': 'Colour',
    'chat.empty': 'No messages yet.',

    'color.white': 'White',
    'color.red': 'Red',
    'color.orange': 'Orange',
    'color.yellow': 'Yellow',
    'color.green': 'Green',
    'color.cyan': 'Cyan',
    'color.blue': 'Blue',
    'color.pink': 'Pink',

    'name.title': 'Join the chat',
    'name.label': 'Your name',
    'name.placeholder': 'Name shown to others',
    'name.submit': 'Join',
    'name.again': 'Your session has expired. Please enter your name again.',
    'name.joining': 'Joining…',

    'status.held': 'Your message is held for review.',
    'status.sent_duplicate': 'That message was already sent.',
    'status.muted_until': 'You are muted until {time}.',
    'status.muted_now': 'A moderator muted you until {time}.',
    'status.banned_now': 'You have been banned from this room.',
    'status.banned_reason': 'You have been banned from this room: {reason}',
    'status.room_closed': 'This room has ended.',
    'status.undo': 'Undo',

    'err.rate_limited': 'Too fast. Wait {s} s.',
    'err.rate_limited_plain': 'Too fast. Wait a moment.',
    'err.slow_mode': 'Slow mode: wait {s} s before your next message.',
    'err.slow_mode_plain': 'Slow mode is on. Wait a little.',
    'err.muted': 'You are muted until {time}.',
    'err.muted_plain': 'You are muted.',
    'err.blocked': 'Your message was blocked.',
    'err.chat_paused': 'Chat is paused.',
    'err.empty_message': 'Type a message first.',
    'err.message_too_long': 'That message is too long.',
    'err.repeated_message': 'You already said that.',
    'err.banned': 'You are banned from this room.',
    'err.forbidden': 'You are not allowed to do that.',
    'err.not_found': 'Not found (already handled?).',
    'err.timeout': 'No answer from the server. Try again.',
    'err.offline': 'Not connected. Wait for the connection to come back.',
    'err.network': 'Cannot reach the server.',
    'err.token_missing': 'This page needs an access link.',
    'err.token_invalid': 'This access link is not valid.',
    'err.token_expired': 'This access link has expired. Ask for a new one.',
    'err.token_wrong_room': 'This access link is for another room.',
    'err.room_not_found': 'This room does not exist.',
    'err.room_closed': 'This room has ended.',
    'err.room_private': 'This room is private. You need an invite link.',
    'err.bad_payload': 'The server did not understand the request.',
    'err.unknown': 'Something went wrong: {message}',

    'mod.title': 'Moderation',
    'mod.feed': 'Live chat',
    'mod.delete': 'Delete',
    'mod.mute': 'Mute',
    'mod.unmute': 'Unmute',
    'mod.ban': 'Ban',
    'mod.mute_for': 'Mute for',
    'mod.dur.60': '1 min',
    'mod.dur.600': '10 min',
    'mod.dur.3600': '1 h',
    'mod.dur.86400': '24 h',
    'mod.held': 'Held for review',
    'mod.held_empty': 'Nothing waiting.',
    'mod.approve': 'Approve',
    'mod.reject': 'Reject',
    'mod.rules': 'Blocked words and patterns',
    'mod.rules_empty': 'No rules.',
    'mod.rule_pattern': 'Word or pattern',
    'mod.rule_kind': 'Kind',
    'mod.rule_kind.word': 'Word',
    'mod.rule_kind.regex': 'Regex',
    'mod.rule_action': 'Action',
    'mod.rule_action.block': 'Block',
    'mod.rule_action.hold': 'Hold for review',
    'mod.rule_action.mute': 'Mute sender',
    'mod.rule_action.ban': 'Ban sender',
    'mod.rule_mute_seconds': 'Mute seconds',
    'mod.rule_add': 'Add rule',
    'mod.rule_remove': 'Remove',
    'mod.refresh': 'Refresh',
    'mod.room': 'Room controls',
    'mod.slow': 'Slow mode',
    'mod.slow.0': 'Off',
    'mod.slow.n': '{s} s',
    'mod.pause': 'Pause chat',
    'mod.resume': 'Resume chat',
    'mod.viewers': 'Viewers online',
    'mod.viewers_empty': 'Nobody here.',
    'mod.stats': 'Stats',
    'mod.stats.viewers': 'Viewers',
    'mod.stats.peak': 'Peak',
    'mod.stats.likes': 'Likes',
    'mod.stats.messages': 'Messages',
    'mod.stats.sampled_away': 'Sampled away',
    'mod.need_token': 'This page needs a moderator link (…/moderate/<room>#token=…).',
    'mod.not_moderator': 'This link does not give moderator rights for this room.',
    'mod.done.delete': 'Message deleted.',
    'mod.done.mute': '{name} muted until {time}.',
    'mod.done.unmute': '{name} unmuted.',
    'mod.done.ban': '{name} banned.',
    'mod.done.unban': '{name} unbanned.',
    'mod.done.rule_add': 'Rule added.',
    'mod.done.rule_remove': 'Rule removed.',
    'mod.done.slow': 'Slow mode set.',
    'mod.done.pause': 'Chat paused.',
    'mod.done.resume': 'Chat resumed.',
    'mod.done.approve': 'Message approved.',
    'mod.done.reject': 'Message rejected.',
    'mod.you': 'you',
  },

  'zh-CN': {
    'lang.other': 'English',
    'lang.switch': '切换语言',
    'app.name': 'livehub',
    'app.tagline': '自托管的直播互动：聊天与弹幕。',

    'index.title': 'livehub',
    'index.about': 'livehub 是一个自托管的直播互动服务器：观众可以观看直播、聊天、发送弹幕和点赞，主播和房管负责维护房间秩序。',
    'index.point1': '运行在你自己的服务器上：不依赖第三方服务，没有跟踪。',
    'index.point2': '视频上的弹幕与聊天面板，手机和电脑都能用。',
    'index.point3': '管理工具：删除、禁言、封禁、屏蔽词规则、慢速模式、审核队列。',
    'index.go.label': '房间号',
    'index.go.placeholder': '例如 demo',
    'index.go.submit': '进入观看',
    'index.go.invalid': '请输入房间号。',

    'role.host': '主播',
    'role.moderator': '房管',
    'role.viewer': '观众',

    'conn.idle': '未连接',
    'conn.connecting': '连接中…',
    'conn.connected': '已连接',
    'conn.reconnecting': '重新连接中…',
    'conn.reconnecting_n': '重新连接中（第 {n} 次）…',
    'conn.disconnected': '已断开',
    'conn.refused': '未获准进入',

    'live.on': '直播中',
    'live.paused': '已暂停，正在重连…',
    'live.off': '未开播',
    'live.closed': '已结束',

    'stage.waiting': '等待主播开播…',
    'stage.danmaku_toggle': '开关弹幕',
    'stage.danmaku': '弹幕',

    'watch.viewers': '观众',
    'watch.likes': '点赞',
    'watch.like': '点赞',
    'watch.not_shown': '{n} 条未显示',
    'watch.not_shown_title': '房间消息过多，部分弹幕被抽样略过',
    'watch.chat': '聊天',
    'watch.slow_mode': '慢速模式：{s} 秒',
    'watch.paused': '聊天已暂停',

    'chat.placeholder': '说点什么…',
    'chat.placeholder_paused': '聊天已暂停',
    'chat.send': '发送',
    'chat.mode': '位置',
    'chat.mode.scroll': '滚动',
    'chat.mode.top': '顶部',
    'chat.mode.bottom': '底部',
    'chat.color': '颜色',
    'chat.empty': '还没有消息。',

    'color.white': '白色',
    'color.red': '红色',
    'color.orange': '橙色',
    'color.yellow': '黄色',
    'color.green': '绿色',
    'color.cyan': '青色',
    'color.blue': '蓝色',
    'color.pink': '粉色',

    'name.title': '加入聊天',
    'name.label': '你的昵称',
    'name.placeholder': '其他人看到的名字',
    'name.submit': '加入',
    'name.again': '你的会话已过期，请重新输入昵称。',
    'name.joining': '正在加入…',

    'status.held': '你的消息正在等待审核。',
    'status.sent_duplicate': '这条消息已经发送过了。',
    'status.muted_until': '你已被禁言，直到 {time}。',
    'status.muted_now': '房管已将你禁言，直到 {time}。',
    'status.banned_now': '你已被移出本房间。',
    'status.banned_reason': '你已被移出本房间：{reason}',
    'status.room_closed': '本场直播已结束。',
    'status.undo': '撤销',

    'err.rate_limited': '发送太快了，请等待 {s} 秒。',
    'err.rate_limited_plain': '发送太快了，请稍候。',
    'err.slow_mode': '慢速模式：请等待 {s} 秒后再发言。',
    'err.slow_mode_plain': '慢速模式已开启，请稍候。',
    'err.muted': '你已被禁言，直到 {time}。',
    'err.muted_plain': '你已被禁言。',
    'err.blocked': '你的消息被拦截了。',
    'err.chat_paused': '聊天已暂停。',
    'err.empty_message': '请先输入内容。',
    'err.message_too_long': '消息太长了。',
    'err.repeated_message': '请不要重复发送相同的内容。',
    'err.banned': '你已被移出本房间。',
    'err.forbidden': '你没有权限这样做。',
    'err.not_found': '未找到（可能已处理）。',
    'err.timeout': '服务器没有响应，请重试。',
    'err.offline': '未连接，请等待连接恢复。',
    'err.network': '无法连接服务器。',
    'err.token_missing': '此页面需要访问链接。',
    'err.token_invalid': '访问链接无效。',
    'err.token_expired': '访问链接已过期，请获取新的链接。',
    'err.token_wrong_room': '该访问链接属于其他房间。',
    'err.room_not_found': '房间不存在。',
    'err.room_closed': '本场直播已结束。',
    'err.room_private': '这是私密房间，需要邀请链接。',
    'err.bad_payload': '服务器无法理解该请求。',
    'err.unknown': '出错了：{message}',

    'mod.title': '房间管理',
    'mod.feed': '实时聊天',
    'mod.delete': '删除',
    'mod.mute': '禁言',
    'mod.unmute': '解除禁言',
    'mod.ban': '封禁',
    'mod.mute_for': '禁言时长',
    'mod.dur.60': '1 分钟',
    'mod.dur.600': '10 分钟',
    'mod.dur.3600': '1 小时',
    'mod.dur.86400': '24 小时',
    'mod.held': '待审核',
    'mod.held_empty': '没有待审核的消息。',
    'mod.approve': '通过',
    'mod.reject': '拒绝',
    'mod.rules': '屏蔽词与规则',
    'mod.rules_empty': '没有规则。',
    'mod.rule_pattern': '词语或模式',
    'mod.rule_kind': '类型',
    'mod.rule_kind.word': '词语',
    'mod.rule_kind.regex': '正则',
    'mod.rule_action': '处理',
    'mod.rule_action.block': '拦截',
    'mod.rule_action.hold': '送审',
    'mod.rule_action.mute': '禁言发送者',
    'mod.rule_action.ban': '封禁发送者',
    'mod.rule_mute_seconds': '禁言秒数',
    'mod.rule_add': '添加规则',
    'mod.rule_remove': '移除',
    'mod.refresh': '刷新',
    'mod.room': '房间设置',
    'mod.slow': '慢速模式',
    'mod.slow.0': '关闭',
    'mod.slow.n': '{s} 秒',
    'mod.pause': '暂停聊天',
    'mod.resume': '恢复聊天',
    'mod.viewers': '在线观众',
    'mod.viewers_empty': '暂时没有人。',
    'mod.stats': '统计',
    'mod.stats.viewers': '观众',
    'mod.stats.peak': '峰值',
    'mod.stats.likes': '点赞',
    'mod.stats.messages': '消息',
    'mod.stats.sampled_away': '抽样略过',
    'mod.need_token': '此页面需要房管链接（…/moderate/<房间>#token=…）。',
    'mod.not_moderator': '该链接没有本房间的管理权限。',
    'mod.done.delete': '消息已删除。',
    'mod.done.mute': '已禁言 {name}，直到 {time}。',
    'mod.done.unmute': '已解除 {name} 的禁言。',
    'mod.done.ban': '已封禁 {name}。',
    'mod.done.unban': '已解除 {name} 的封禁。',
    'mod.done.rule_add': '规则已添加。',
    'mod.done.rule_remove': '规则已移除。',
    'mod.done.slow': '慢速模式已设置。',
    'mod.done.pause': '聊天已暂停。',
    'mod.done.resume': '聊天已恢复。',
    'mod.done.approve': '消息已通过。',
    'mod.done.reject': '消息已拒绝。',
    'mod.you': '你',
  },
};

function readStored() {
  try {
    const v = localStorage.getItem(STORAGE_KEY);
    return LANGS.includes(v) ? v : null;
  } catch (_) {
    return null;
  }
}

function fromNavigator() {
  const prefs = (navigator.languages && navigator.languages.length)
    ? navigator.languages : [navigator.language || 'en'];
  for (const tag of prefs) {
    const low = String(tag).toLowerCase();
    if (low.startsWith('zh')) return 'zh-CN';
    if (low.startsWith('en')) return 'en';
  }
  return 'en';
}

let current = readStored() || fromNavigator();
const listeners = new Set();

/** Add a feature's strings: addStrings({en: {...}, 'zh-CN': {...}}). */
export function addStrings(tables) {
  for (const [code, table] of Object.entries(tables)) {
    DICT[code] = Object.assign(DICT[code] || {}, table);
  }
}

export function lang() {
  return current;
}

/** Translate `key`, replacing `{name}` with vars.name (as plain text). */
export function t(key, vars) {
  const table = DICT[current] || DICT.en;
  let s = table[key];
  if (s === undefined) s = DICT.en[key];
  if (s === undefined) return key;
  if (vars) {
    s = s.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
  }
  return s;
}

/** Set an element's text from a key and remember it, so a language switch re-translates it. */
export function setText(el, key, vars) {
  el.dataset.i18n = key;
  if (vars) el.dataset.i18nVars = JSON.stringify(vars);
  else delete el.dataset.i18nVars;
  el.textContent = t(key, vars);
}

/** Translate every marked element under root. */
export function applyI18n(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) {
    let vars;
    if (el.dataset.i18nVars) {
      try { vars = JSON.parse(el.dataset.i18nVars); } catch (_) { vars = undefined; }
    }
    el.textContent = t(el.dataset.i18n, vars);
  }
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) {
    el.setAttribute('placeholder', t(el.dataset.i18nPlaceholder));
  }
  for (const el of root.querySelectorAll('[data-i18n-title]')) {
    const s = t(el.dataset.i18nTitle);
    el.setAttribute('title', s);
    el.setAttribute('aria-label', s);
  }
  for (const el of root.querySelectorAll('[data-i18n-attr]')) {
    for (const pair of el.dataset.i18nAttr.split(';')) {
      const i = pair.indexOf(':');
      if (i > 0) el.setAttribute(pair.slice(0, i).trim(), t(pair.slice(i + 1).trim()));
    }
  }
}

export function setLang(next) {
  if (!LANGS.includes(next)) return;
  current = next;
  try { localStorage.setItem(STORAGE_KEY, next); } catch (_) { /* private mode */ }
  document.documentElement.lang = next;
  applyI18n(document);
  for (const fn of listeners) fn(next);
}

export function onLangChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Translate the page now and wire the #lang-toggle button, if there is one. */
export function initI18n() {
  document.documentElement.lang = current;
  applyI18n(document);
  const btn = document.getElementById('lang-toggle');
  if (btn) {
    btn.addEventListener('click', () => {
      setLang(current === 'en' ? 'zh-CN' : 'en');
    });
  }
}

/** A local clock time for an epoch-seconds timestamp. */
export function formatTime(epochSeconds) {
  const d = new Date(Number(epochSeconds) * 1000);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString(current, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}
