// Interaction features: each module mounts a viewer card on the watch page and
// a control panel on the moderate (later also the studio) page.
//   watch(ctx):    ctx = {room, client, cards, status}     cards: the layer over the video
//   controls(ctx): ctx = {room, client, controls, status}  controls: a column of panels
// client is the LiveClient from ../live.js: client.on(event, fn) receives server
// events; client.request(event, payload) resolves with the ack.

import { mountPollCard, mountPollControls } from './poll.js';
import { mountQuizCard, mountQuizControls } from './quiz.js';
import { mountDrawCard, mountDrawControls } from './draw.js';
import { mountOfferCard, mountOfferControls } from './offer.js';
import { mountQaCard, mountQaControls } from './qa.js';

export const WATCH_FEATURES = [
  mountPollCard, mountQuizCard, mountDrawCard, mountOfferCard, mountQaCard,
];
export const CONTROL_FEATURES = [
  mountPollControls, mountQuizControls, mountDrawControls, mountOfferControls, mountQaControls,
];
