// Quizzes: a card over the video for viewers (question, countdown, answer,
// reveal with your points, leaderboard, podium, your rank) and a "Quiz" panel
// on the moderate page (create from text, next / reveal / end, live answer
// count). Protocol: docs/protocol-quizzes.md. Server strings use textContent.

import { addStrings, setText, t } from '../i18n.js';
import { el, tel } from '../ui.js';

addStrings({
  en: {
    'quiz.title': 'Quiz',
    'quiz.question_n': 'Question {n} / {total}',
    'quiz.time_left': '{s} s',
    'quiz.time_up': "Time's up",
    'quiz.submit': 'Answer',
    'quiz.pick_all': 'Select all correct answers',
    'quiz.locked': 'Answer locked in. Wait for the reveal…',
    'quiz.correct': 'Correct! +{points}',
    'quiz.wrong': 'Not this time.',
    'quiz.no_answer': 'No answer this time.',
    'quiz.you': 'You: {score} points · rank #{rank}',
    'quiz.you_unranked': 'You: {score} points',
    'quiz.leaderboard': 'Leaderboard',
    'quiz.podium': 'Podium',
    'quiz.ended': 'The quiz has ended.',
    'quiz.points': '{score}',
    'quiz.answered_n': '{n} answered',
    'quiz.err.quiz_closed': 'Too late: this question is closed.',
    'quiz.err.already_answered': 'You already answered this question.',
    'quiz.err.bad_choice': 'Choose an answer first.',
    'quiz.err.bad_quiz': 'That quiz is not valid: {message}',
    'quiz.err.not_revealed': 'Reveal the current question first.',
    'quiz.err.no_more_questions': 'That was the last question.',
    'quiz.err.quiz_ended': 'This quiz has ended.',
    'quiz.err.no_question': 'Open a question first.',
    'quiz.err.parse': 'Block {n}: {problem}',
    'quiz.parse.question': 'a question needs 2-6 options',
    'quiz.parse.correct': 'mark the correct options with *',
    'quiz.parse.empty': 'write at least one question',
    'quiz.panel': 'Quiz',
    'quiz.quiz_title': 'Title',
    'quiz.text': 'Questions',
    'quiz.format_help': 'One question per block, blocks separated by an empty line. First line: the question; then one option per line, * before each correct option; optional "time: 20" (5-120 s) and "points: 1000".',
    'quiz.placeholder': 'What is 2 + 2?\n3\n*4\n5\ntime: 20\n\nWhich are prime?\n*2\n4\n*5\n9',
    'quiz.streak': 'Streak bonus',
    'quiz.create': 'Create quiz',
    'quiz.created': 'Quiz created.',
    'quiz.empty': 'No quizzes yet.',
    'quiz.next': 'Next question',
    'quiz.reveal': 'Reveal',
    'quiz.end': 'End quiz',
    'quiz.status.ready': 'Ready',
    'quiz.status.question': 'Question {n} / {total} open',
    'quiz.status.revealed': 'Question {n} / {total} revealed',
    'quiz.status.ended': 'Ended',
  },
  'zh-CN': {
    'quiz.title': '答题',
    'quiz.question_n': '第 {n} / {total} 题',
    'quiz.time_left': '{s} 秒',
    'quiz.time_up': '时间到',
    'quiz.submit': '提交答案',
    'quiz.pick_all': '选出所有正确答案',
    'quiz.locked': '答案已提交，等待揭晓…',
    'quiz.correct': '答对了！+{points}',
    'quiz.wrong': '这次没答对。',
    'quiz.no_answer': '这题没有作答。',
    'quiz.you': '你：{score} 分 · 第 {rank} 名',
    'quiz.you_unranked': '你：{score} 分',
    'quiz.leaderboard': '排行榜',
    'quiz.podium': '领奖台',
    'quiz.ended': '答题已结束。',
    'quiz.points': '{score}',
    'quiz.answered_n': '已有 {n} 人作答',
    'quiz.err.quiz_closed': '太晚了：这道题已经截止。',
    'quiz.err.already_answered': '你已经回答过这道题了。',
    'quiz.err.bad_choice': '请先选择答案。',
    'quiz.err.bad_quiz': '题目设置无效：{message}',
    'quiz.err.not_revealed': '请先揭晓当前题目。',
    'quiz.err.no_more_questions': '已经是最后一题了。',
    'quiz.err.quiz_ended': '答题已经结束。',
    'quiz.err.no_question': '请先出题。',
    'quiz.err.parse': '第 {n} 段：{problem}',
    'quiz.parse.question': '每道题需要 2-6 个选项',
    'quiz.parse.correct': '请用 * 标出正确选项',
    'quiz.parse.empty': '请至少写一道题',
    'quiz.panel': '答题',
    'quiz.quiz_title': '标题',
    'quiz.text': '题目',
    'quiz.format_help': '每道题一段，段与段之间空一行。第一行是题目；之后每行一个选项，正确选项前加 *；可选 "time: 20"（5-120 秒）和 "points: 1000"。',
    'quiz.placeholder': '2 + 2 等于几？\n3\n*4\n5\ntime: 20\n\n哪些是质数？\n*2\n4\n*5\n9',
    'quiz.streak': '连对奖励',
    'quiz.create': '创建答题',
    'quiz.created': '答题已创建。',
    'quiz.empty': '还没有答题。',
    'quiz.next': '下一题',
    'quiz.reveal': '揭晓答案',
    'quiz.end': '结束答题',
    'quiz.status.ready': '未开始',
    'quiz.status.question': '第 {n} / {total} 题进行中',
    'quiz.status.revealed': '第 {n} / {total} 题已揭晓',
    'quiz.status.ended': '已结束',
  },
});

const OWN_ERRORS = [
  'quiz_closed', 'already_answered', 'bad_choice', 'not_revealed', 'no_more_questions',
  'quiz_ended', 'no_question',
];

function reportError(status, error) {
  const e = error || {};
  if (OWN_ERRORS.includes(e.code)) status.show(`quiz.err.${e.code}`, null, { kind: 'error' });
  else if (e.code === 'bad_quiz') status.show('quiz.err.bad_quiz', { message: e.message || '' }, { kind: 'error' });
  else status.error(e);
}

function button(className, key, vars) {
  const b = tel('button', `btn ${className}`, key, vars);
  b.type = 'button';
  return b;
}

/** Empty a node that may carry a translated text. */
function clearText(node) {
  delete node.dataset.i18n;
  delete node.dataset.i18nVars;
  node.textContent = '';
}

function standingsList(className, standings) {
  const list = el('ol', `quiz-board ${className}`);
  for (const s of standings || []) {
    const li = el('li', 'quiz-board-row');
    li.dataset.viewer = String(s.viewer_id);
    li.append(
      el('span', 'quiz-rank', `#${s.rank}`),
      el('span', 'quiz-name', s.name),
      el('span', 'quiz-score', String(s.score)),
    );
    list.appendChild(li);
  }
  return list;
}

// ------------------------------------------------------------ viewer card

export function mountQuizCard({ client, cards, status }) {
  const card = el('section', 'card quiz-card');
  card.hidden = true;
  const head = el('div', 'quiz-head');
  const label = tel('span', 'quiz-label', 'quiz.title');
  const progress = el('span', 'quiz-progress');
  const countdown = el('span', 'pill quiz-countdown');
  head.append(label, progress, countdown);
  const question = el('h3', 'quiz-question');
  const hint = tel('p', 'muted-text quiz-hint', 'quiz.pick_all');
  const options = el('div', 'quiz-options');
  const submit = tel('button', 'btn btn-primary quiz-submit', 'quiz.submit');
  submit.type = 'button';
  const locked = tel('p', 'quiz-locked', 'quiz.locked');
  const result = el('p', 'quiz-result');
  const you = el('p', 'quiz-you');
  const board = el('div', 'quiz-board-box');
  card.append(head, question, hint, options, submit, locked, result, you, board);
  cards.appendChild(card);

  let current = null;   // the open question
  let picked = new Set();
  let answered = false;
  let timer = null;
  let offset = null;    // local clock correction when the client has none yet

  function serverNow() {
    const o = typeof client.clockOffset === 'number' && client.clockOffset !== 0 ? client.clockOffset : (offset || 0);
    return Date.now() / 1000 + o;
  }

  function tick() {
    if (!current) return;
    const left = Math.max(0, Math.ceil(current.deadline - serverNow()));
    if (left > 0) setText(countdown, 'quiz.time_left', { s: left });
    else {
      setText(countdown, 'quiz.time_up');
      lock();
    }
  }

  function lock() {
    for (const b of options.querySelectorAll('button')) b.disabled = true;
    submit.hidden = true;
  }

  function showQuestion(q, mine) {
    current = q;
    if (typeof q.server_time === 'number') offset = q.server_time - Date.now() / 1000;
    picked = new Set();
    answered = false;
    card.hidden = false;
    card.dataset.quiz = q.quiz_id;
    card.dataset.index = String(q.index);
    card.dataset.phase = 'question';
    setText(progress, 'quiz.question_n', { n: q.index + 1, total: q.total });
    question.textContent = q.text;
    hint.hidden = !q.multiple;
    options.replaceChildren();
    (q.options || []).forEach((text, i) => {
      const b = el('button', 'btn quiz-option', text);
      b.type = 'button';
      b.dataset.index = String(i);
      b.setAttribute('aria-pressed', 'false');
      b.addEventListener('click', () => choose(i, b));
      options.appendChild(b);
    });
    submit.hidden = !q.multiple;
    locked.hidden = true;
    clearText(result);
    delete card.dataset.result;
    board.replaceChildren();
    countdown.hidden = false;
    clearInterval(timer);
    timer = setInterval(tick, 250);
    tick();
    if (mine && mine.length) markAnswered(mine);
  }

  function choose(i, b) {
    if (answered || !current) return;
    if (current.multiple) {
      if (picked.has(i)) picked.delete(i);
      else picked.add(i);
      b.setAttribute('aria-pressed', picked.has(i) ? 'true' : 'false');
      return;
    }
    picked = new Set([i]);
    send();
  }

  async function send() {
    if (!current || answered) return;
    const choices = [...picked].sort((a, b) => a - b);
    if (!choices.length) {
      status.show('quiz.err.bad_choice', null, { kind: 'error' });
      return;
    }
    const q = current;
    lock();
    const ack = await client.request('quiz_answer', { quiz_id: q.quiz_id, index: q.index, choices });
    if (ack.ok || (ack.error && ack.error.code === 'already_answered')) {
      markAnswered(choices);
      if (!ack.ok) reportError(status, ack.error);
      return;
    }
    reportError(status, ack.error);
    if (ack.error && ack.error.code === 'quiz_closed') return;
    // something else went wrong: let the viewer try again while time is left
    for (const b of options.querySelectorAll('button')) b.disabled = false;
    submit.hidden = !q.multiple;
  }

  submit.addEventListener('click', () => send());

  function markAnswered(choices) {
    answered = true;
    picked = new Set(choices);
    lock();
    for (const b of options.querySelectorAll('button')) {
      const mine = picked.has(Number(b.dataset.index));
      b.classList.toggle('is-mine', mine);
      b.setAttribute('aria-pressed', mine ? 'true' : 'false');
    }
    locked.hidden = false;
  }

  function showReveal(r) {
    if (!current || current.quiz_id !== r.quiz_id || current.index !== r.index) {
      // joined after the question: show the reveal on its own
      card.hidden = false;
      card.dataset.quiz = r.quiz_id;
      card.dataset.index = String(r.index);
      setText(progress, 'quiz.question_n', { n: r.index + 1, total: r.total });
      options.replaceChildren();
      clearText(question);
      hint.hidden = true;
      submit.hidden = true;
      locked.hidden = true;
    }
    clearInterval(timer);
    countdown.hidden = true;
    card.dataset.phase = 'reveal';
    locked.hidden = true;
    const correct = new Set(r.correct || []);
    for (const b of options.querySelectorAll('button')) {
      const i = Number(b.dataset.index);
      b.disabled = true;
      b.classList.toggle('is-correct', correct.has(i));
      b.classList.toggle('is-wrong', answered && !correct.has(i) && picked.has(i));
      const count = (r.counts || [])[i];
      if (typeof count === 'number') b.dataset.count = String(count);
    }
    if (!answered) setText(result, 'quiz.no_answer');
    board.replaceChildren(tel('h4', '', 'quiz.leaderboard'), standingsList('quiz-leaderboard', r.leaderboard));
    current = null;
  }

  function showYou(y) {
    card.dataset.result = y.correct ? 'correct' : 'wrong';
    if (y.correct) setText(result, 'quiz.correct', { points: y.last_points });
    else setText(result, 'quiz.wrong');
    showStanding(y);
  }

  function showStanding(me) {
    if (me && typeof me.rank === 'number') setText(you, 'quiz.you', { score: me.score, rank: me.rank });
    else if (me) setText(you, 'quiz.you_unranked', { score: me.score || 0 });
  }

  async function showPodium(p) {
    clearInterval(timer);
    current = null;
    card.hidden = false;
    card.dataset.quiz = p.quiz_id;
    card.dataset.phase = 'podium';
    countdown.hidden = true;
    options.replaceChildren();
    hint.hidden = true;
    submit.hidden = true;
    locked.hidden = true;
    question.textContent = p.title || '';
    setText(progress, 'quiz.ended');
    clearText(result);
    board.replaceChildren(
      tel('h4', '', 'quiz.podium'), standingsList('quiz-podium', p.podium),
      tel('h4', '', 'quiz.leaderboard'), standingsList('quiz-leaderboard', p.leaderboard),
    );
    const ack = await client.request('quiz_me', { quiz_id: p.quiz_id });
    if (ack.ok) showStanding(ack);
  }

  async function refresh() {
    const ack = await client.request('quiz_state', {});
    if (!ack.ok || !Array.isArray(ack.quizzes) || !ack.quizzes.length) return;
    const s = ack.quizzes[ack.quizzes.length - 1];
    if (s.status === 'question' && s.question) {
      showQuestion(s.question, s.me && s.me.current_choices);
    } else if (s.status === 'revealed' && s.reveal) {
      showReveal(s.reveal);
    } else if (s.status === 'ended' && s.podium) {
      await showPodium(s.podium);
      return;
    }
    showStanding(s.me);
  }

  client.on('welcome', () => { refresh(); });
  client.on('quiz_question', (q) => showQuestion(q));
  client.on('quiz_reveal', (r) => showReveal(r));
  client.on('quiz_you', (y) => showYou(y));
  client.on('quiz_podium', (p) => { showPodium(p); });
}

// ------------------------------------------------------------ moderator panel

/**
 * Parse the quiz text: blocks separated by empty lines; the first line is the
 * question, the others options ("*" marks correct ones) or "time: N" / "points: N".
 * Returns {questions} or {error: [key, vars]}.
 */
export function parseQuiz(text) {
  const blocks = String(text).split(/\n\s*\n/).map((b) => b.trim()).filter(Boolean);
  if (!blocks.length) return { error: ['quiz.parse.empty'] };
  const questions = [];
  for (const [n, block] of blocks.entries()) {
    const lines = block.split('\n').map((l) => l.trim()).filter(Boolean);
    const q = { text: lines[0], options: [], correct: [] };
    for (const line of lines.slice(1)) {
      const setting = line.match(/^(time|points)\s*:\s*(\d+)$/i);
      if (setting) {
        if (setting[1].toLowerCase() === 'time') q.time_limit_seconds = Number(setting[2]);
        else q.points = Number(setting[2]);
        continue;
      }
      if (line.startsWith('*')) {
        q.correct.push(q.options.length);
        q.options.push(line.slice(1).trim());
      } else {
        q.options.push(line);
      }
    }
    if (q.options.length < 2 || q.options.length > 6) return { error: ['quiz.err.parse', { n: n + 1, problem: t('quiz.parse.question') }] };
    if (!q.correct.length) return { error: ['quiz.err.parse', { n: n + 1, problem: t('quiz.parse.correct') }] };
    questions.push(q);
  }
  return { questions };
}

export function mountQuizControls({ client, controls, status }) {
  const panel = el('section', 'panel quiz-panel');
  const head = el('div', 'panel-head');
  head.appendChild(tel('h2', '', 'quiz.panel'));
  panel.appendChild(head);

  const form = el('form', 'quiz-create');
  form.autocomplete = 'off';
  const title = el('input', 'quiz-title-input');
  title.type = 'text';
  title.maxLength = 120;
  title.required = true;
  const text = el('textarea', 'quiz-text-input');
  text.rows = 8;
  text.dataset.i18nPlaceholder = 'quiz.placeholder';
  text.placeholder = t('quiz.placeholder');
  const streak = el('input', 'quiz-streak');
  streak.type = 'checkbox';
  streak.checked = true;
  const titleLabel = el('label', 'poll-field');
  titleLabel.append(tel('span', 'poll-field-label', 'quiz.quiz_title'), title);
  const textLabel = el('label', 'poll-field');
  textLabel.append(tel('span', 'poll-field-label', 'quiz.text'), text);
  const help = tel('p', 'muted-text quiz-help', 'quiz.format_help');
  const streakLabel = el('label', 'poll-check');
  streakLabel.append(streak, tel('span', '', 'quiz.streak'));
  const submit = tel('button', 'btn btn-primary quiz-create-submit', 'quiz.create');
  submit.type = 'submit';
  form.append(titleLabel, textLabel, help, streakLabel, submit);
  panel.appendChild(form);

  const list = el('ol', 'item-list quiz-admin-list');
  list.dataset.i18nAttr = 'data-empty:quiz.empty';
  list.dataset.empty = t('quiz.empty');
  panel.appendChild(list);
  controls.appendChild(panel);

  const rows = new Map();   // quiz id -> {row, count}

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const parsed = parseQuiz(text.value);
    if (parsed.error) {
      status.show(parsed.error[0], parsed.error[1], { kind: 'error' });
      return;
    }
    submit.disabled = true;
    const ack = await client.request('quiz_create', {
      title: title.value.trim(), questions: parsed.questions, streak_bonus: streak.checked,
    });
    submit.disabled = false;
    if (!ack.ok) {
      reportError(status, ack.error);
      return;
    }
    status.show('quiz.created', null, { kind: 'ok' });
    title.value = '';
    text.value = '';
    upsert(ack.quiz);
  });

  function upsert(quiz, answered) {
    if (!quiz || !quiz.id) return;
    let entry = rows.get(quiz.id);
    if (!entry) {
      entry = { row: el('li', 'quiz-admin'), count: el('span', 'quiz-answer-count') };
      entry.row.dataset.quiz = quiz.id;
      rows.set(quiz.id, entry);
      list.appendChild(entry.row);
    }
    const { row, count } = entry;
    row.dataset.status = quiz.status;
    row.dataset.index = String(quiz.index);
    row.replaceChildren();
    const top = el('div', 'poll-admin-top');
    top.appendChild(el('span', 'poll-admin-question', quiz.title));
    const vars = { n: quiz.index + 1, total: quiz.total };
    top.appendChild(tel('span', 'pill quiz-admin-status', `quiz.status.${quiz.status}`, vars));
    if (typeof answered === 'number') setText(count, 'quiz.answered_n', { n: answered });
    if (quiz.status === 'question' || quiz.status === 'revealed') top.appendChild(count);
    row.appendChild(top);
    const q = quiz.index >= 0 ? quiz.questions[quiz.index] : null;
    if (q) row.appendChild(el('p', 'muted-text quiz-admin-question', q.text));
    const actions = el('div', 'poll-admin-actions');
    if (quiz.status !== 'ended') {
      actions.appendChild(action('quiz_next', 'quiz.next', quiz.id));
      actions.appendChild(action('quiz_reveal', 'quiz.reveal', quiz.id));
      actions.appendChild(action('quiz_end', 'quiz.end', quiz.id));
    }
    row.appendChild(actions);
  }

  function action(event, key, quizId) {
    const b = button('btn-small quiz-action', key);
    b.dataset.event = event;
    b.addEventListener('click', async () => {
      b.disabled = true;
      const ack = await client.request(event, { quiz_id: quizId });
      b.disabled = false;
      if (!ack.ok) reportError(status, ack.error);
      else if (event === 'quiz_next' && ack.quiz) upsert(ack.quiz, 0);
    });
    return b;
  }

  async function refresh() {
    const ack = await client.request('quiz_list', {});
    if (!ack.ok) return;
    for (const quiz of ack.quizzes || []) upsert(quiz, quiz.answered);
  }

  client.on('welcome', () => { refresh(); });
  client.on('quiz_staff', (quiz) => upsert(quiz));
  client.on('quiz_answers', (c) => {
    const entry = rows.get(c.quiz_id);
    if (entry && String(c.index) === entry.row.dataset.index) {
      setText(entry.count, 'quiz.answered_n', { n: c.answered });
    }
  });
}
