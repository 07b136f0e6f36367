// openai-node's chat stream helpers against one OpenAI-shaped route: `node openai_helpers.cjs BASE_URL MODEL MODE`
// with OPENAI_API_KEY set and NODE_PATH naming the folder that holds the `openai` package. MODE "stream" runs
// `chat.completions.stream()`, "tools" a streamed `chat.completions.runTools()` loop with one tool. Prints what the
// helpers gave back as one JSON line; a helper's error goes to stderr with exit status 1.
"use strict";
const OpenAI = require("openai");

const [baseURL, model, mode] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: process.env.OPENAI_API_KEY, maxRetries: 0 });

async function stream() {
  const runner = client.chat.completions.stream({ model, messages: [{ role: "user", content: "reason" }] });
  let deltas = "";
  runner.on("content", (delta) => {
    deltas += delta;
  });
  const completion = await runner.finalChatCompletion();
  const choice = completion.choices[0];
  return { deltas, role: choice.message.role, content: choice.message.content, finish_reason: choice.finish_reason };
}

async function tools() {
  const calls = [];
  const getWeather = {
    type: "function",
    function: {
      name: "get_weather",
      description: "The current weather in a city.",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
      parse: JSON.parse,
      function: (args) => {
        calls.push(args);
        return `${args.city}: 18C and sunny`;
      },
    },
  };
  const runner = client.chat.completions.runTools({
    model,
    stream: true,
    messages: [{ role: "user", content: "forecast" }],
    tools: [getWeather],
  });
  const content = await runner.finalContent();
  return { calls, content, roles: runner.messages.map((m) => m.role) };
}

(mode === "tools" ? tools() : stream()).then(
  (result) => console.log(JSON.stringify(result)),
  (error) => {
    console.error(String(error && error.stack ? error.stack : error));
    process.exit(1);
  },
);
