import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import { App } from "./App";
import { loadConfig } from "./config";
import "./styles.css";

const root = document.getElementById("root");
if (root === null) throw new Error("index.html has no #root element");
void loadConfig().then((config) =>
  createRoot(root).render(
    <StrictMode>
      <App config={config} />
    </StrictMode>,
  ),
);
