// Watch a home timeline from a terminal with the reference graphql-ws client:
//   node web/live-client.mjs ws://127.0.0.1:8000/graphql <token> [events] [timeout-ms]
// Prints one JSON line per event; exits after [events] events (default: never).
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, token, want = '0', timeoutMs = '0'] = process.argv.slice(2);
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: token ? { authorization: `Bearer ${token}` } : {},
  lazy: false,
  retryAttempts: 0,
});
if (Number(timeoutMs) > 0) {
  setTimeout(() => { console.error('timeout'); process.exit(2); }, Number(timeoutMs));
}
let seen = 0;
client.on('connected', () => console.log(JSON.stringify({ connected: true })));
client.subscribe(
  { query: 'subscription { homeTimeline { kind tweetId tweet { text author { handle } } } }' },
  {
    next: (value) => {
      console.log(JSON.stringify(value));
      if (Number(want) > 0 && ++seen >= Number(want)) { client.dispose(); process.exit(0); }
    },
    error: (err) => { console.error(JSON.stringify(err)); process.exit(1); },
    complete: () => process.exit(0),
  },
);
