// @membrane/agent: The Membrane reference agent and the membrane CLI.
export {}
