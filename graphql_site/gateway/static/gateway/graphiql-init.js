// Mounts GraphiQL (UMD build, vendored) on #graphiql. The token goes into the Headers tab.
(function () {
  var root = document.getElementById("graphiql");
  var fetcher = GraphiQL.createFetcher({ url: root.dataset.endpoint });
  var defaultQuery = [
    "# Put your API token into the Headers tab below, then run this with Ctrl-Enter.",
    "{",
    "  dailyActiveUsers(date: \"2026-03-02\") { date activeUsers }",
    "}",
    "",
  ].join("\n");
  ReactDOM.createRoot(root).render(React.createElement(GraphiQL, {
    fetcher: fetcher,
    defaultQuery: defaultQuery,
    defaultHeaders: '{\n  "Authorization": "Bearer PASTE-YOUR-API-TOKEN"\n}',
    defaultEditorToolsVisibility: "headers",
    shouldPersistHeaders: true,
  }));
})();
