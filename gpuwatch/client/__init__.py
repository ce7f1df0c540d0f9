"""How a face reads a node: the `Client` protocol and its implementations.

Place in the flow: engine or daemon → **client** → TUI. `protocol` holds the protocol and its
error tree; `inprocess` reads an engine in this process; `http` speaks a daemon's JSON API;
`connect` decides which nodes `gpuwatch top` reads. Import what you use from its module: this
package imports nothing, so the TUI's first frame does not pay for httpx.
"""
