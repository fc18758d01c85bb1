//! Client of the Horizon Server REST API of a site's Connection Server.
