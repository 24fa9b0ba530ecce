"""The embedded lab: simulated iDRAC9-class BMCs and XE9680-class servers in one asyncio process.

The lab stands behind the same transports as real hardware (Redfish over verified TLS,
later SSH), so no command needs a "lab mode". Modules: `clock` (simulated time),
`node` (hardware model and node-side fault state), `faults` (fault kinds and file),
`bmc` (iDRAC state, jobs, tasks), `resources` (Redfish bodies), `routes` (URI table),
`actions` (writes), `protocol` (request/response, errors, ETags), `app` (ASGI: auth,
headers, BMC-side faults), `control` (the lab's own API), `certs` (lab CA), `labdir`
(files in the lab directory), `fleet` (the fleet model and the process entry).
"""
