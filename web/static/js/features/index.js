// Interaction features: each module mounts a viewer card on the watch page and
// a control panel on the moderate (later also the studio) page.
//   watch(ctx):    ctx = {room, client, cards, status}     cards: the layer over the video
//   controls(ctx): ctx = {room, client, controls, status}  controls: a column of panels
// client is the LiveClient from ../live.js: client.on(event, fn) receives server
// events; client.request(event, payload) resolves with the ack.

export const WATCH_FEATURES = [];
export const CONTROL_FEATURES = [];
